// The daemon's graphs history and events kept in its state directory
// (json-lines-file.ts, history.ts, events.ts): read back after a restart,
// bounded by compaction, crash-safe (a torn last line or a stale temporary
// file is skipped), hostile or damaged records skipped, a failing disk
// reported once and not retried in a loop; and a real daemon restarted on the
// same state directory keeps its VM's samples and events.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonLinesFile } from '../src/host/json-lines-file.js';
import { EventLog } from '../src/host/events.js';
import { HISTORY_FIELDS, HistoryRecorder } from '../src/host/history.js';
import { startDaemon, type DaemonOptions } from '../src/host/server.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { api, makeImages, until } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'tsvisor-records-'));

describe('json lines file', () => {
  test('records come back in order; a torn last line and a stale temporary file are skipped', async () => {
    const dir = tmp();
    const path = join(dir, 'r.jsonl');
    const state: unknown[] = [];
    const f = new JsonLinesFile(path, { state: () => state, slackBytes: 1 << 20, maxReadBytes: 1 << 20, log: () => {} });
    f.load();
    for (let i = 0; i < 5; i++) {
      state.push({ i });
      f.append({ i });
    }
    await f.close();
    // A crash in the middle of a line, and a compaction that never got to its rename.
    appendFileSync(path, '{"i": 5, "tor');
    writeFileSync(`${path}.tmp`, '{"i": 99}\n');
    const logs: string[] = [];
    const g = new JsonLinesFile(path, { state: () => [{ i: 0 }], slackBytes: 1 << 20, maxReadBytes: 1 << 20, log: (m) => logs.push(m) });
    const { records, skipped } = g.load();
    assert.deepEqual(records, [0, 1, 2, 3, 4].map((i) => ({ i })));
    assert.equal(skipped, 1);
    assert.equal(existsSync(`${path}.tmp`), false);
    // The damaged file is rewritten from the owner's state at the next write.
    g.append({ i: 1 });
    await g.close();
    assert.equal(readFileSync(path, 'utf8'), '{"i":0}\n');
    rmSync(dir, { recursive: true });
  });

  test('compaction keeps the file within the state plus the slack', async () => {
    const dir = tmp();
    const path = join(dir, 'r.jsonl');
    const state: unknown[] = [];
    const f = new JsonLinesFile(path, { state: () => state, slackBytes: 4096, maxReadBytes: 1 << 20, log: () => {} });
    f.load();
    let biggest = 0;
    for (let i = 0; i < 2000; i++) {
      const rec = { i, pad: 'x'.repeat(40) };
      state.push(rec);
      if (state.length > 50) state.shift(); // the owner keeps the last 50
      f.append(rec);
      if (i % 50 === 0) {
        await f.flush();
        biggest = Math.max(biggest, statSync(path).size);
      }
    }
    await f.close();
    const stateBytes = state.map((r) => JSON.stringify(r).length + 1).reduce((x, y) => x + y, 0);
    assert.ok(biggest <= stateBytes + 4096 + 200, `the file grew to ${biggest} bytes (state ${stateBytes})`);
    const back = new JsonLinesFile(path, { state: () => [], slackBytes: 4096, maxReadBytes: 1 << 20, log: () => {} }).load().records as { i: number }[];
    // Everything the owner keeps is in the file, newest last.
    assert.deepEqual(back.slice(-50).map((r) => r.i), state.map((r) => (r as { i: number }).i));
    rmSync(dir, { recursive: true });
  });

  test('a disk that fails is reported once, not retried in a loop, and written again once it works', async () => {
    const dir = tmp();
    const sub = join(dir, 'gone');
    mkdirSync(sub);
    const path = join(sub, 'r.jsonl');
    const logs: string[] = [];
    const state: unknown[] = [];
    const f = new JsonLinesFile(path, { state: () => state, slackBytes: 1 << 20, maxReadBytes: 1 << 20, log: (m) => logs.push(m) });
    f.load();
    rmSync(sub, { recursive: true });
    for (let i = 0; i < 20; i++) {
      state.push({ i });
      f.append({ i });
      await f.flush();
    }
    assert.equal(logs.filter((m) => /not written/.test(m)).length, 1, logs.join('\n'));
    mkdirSync(sub);
    state.push({ i: 20 });
    f.append({ i: 20 });
    await f.close();
    assert.match(logs.at(-1)!, /writing again/);
    // What was kept in memory meanwhile reached the file with the first write that worked.
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 21);
    rmSync(dir, { recursive: true });
  });

  test('a file beyond the read bound is not read, and replaced at the next write', async () => {
    const dir = tmp();
    const path = join(dir, 'r.jsonl');
    writeFileSync(path, `${'{"x":1}\n'.repeat(1000)}`);
    const logs: string[] = [];
    const f = new JsonLinesFile(path, { state: () => [{ y: 2 }], slackBytes: 1 << 20, maxReadBytes: 1000, log: (m) => logs.push(m) });
    assert.deepEqual(f.load().records, []);
    assert.match(logs[0]!, /more than the 1000 expected/);
    f.append({ y: 2 });
    await f.close();
    assert.equal(readFileSync(path, 'utf8'), '{"y":2}\n');
    rmSync(dir, { recursive: true });
  });
});

describe('events and history read back', () => {
  test('events: both lists come back as they were, a deleted VM\'s own list too, damaged records skipped', async () => {
    const dir = tmp();
    const file = join(dir, 'events.jsonl');
    const log = new EventLog({ hostCapacity: 6, vmCapacity: 3, file });
    log.load();
    for (let i = 0; i < 5; i++) log.add('a', 'x', `a${i}`);
    log.add(null, 'daemon', 'd');
    log.add('b', 'x', 'b0');
    log.forget('a');
    log.add('a', 'deleted', 'deleted');
    log.add('a', 'created', 'again');
    await log.close();
    appendFileSync(file, `${JSON.stringify({ time: 'not a time', vm: null, kind: 'x', level: 'info', message: 'm' })}\n`);
    appendFileSync(file, `${JSON.stringify({ time: new Date().toISOString(), vm: 'v'.repeat(500), kind: 'x', level: 'info', message: 'm' })}\n`);
    appendFileSync(file, `${JSON.stringify({ time: new Date().toISOString(), vm: null, kind: 'x', level: 'fatal', message: 'm' })}\n`);
    const logs: string[] = [];
    const back = new EventLog({ hostCapacity: 6, vmCapacity: 3, file, log: (m) => logs.push(m) });
    assert.deepEqual(back.load(), { events: 6, skipped: 3 });
    assert.deepEqual(back.host(), log.host());
    assert.deepEqual(back.vm('a'), log.vm('a'));
    assert.deepEqual(back.vm('a').map((e) => e.message), ['deleted', 'again']);
    assert.deepEqual(back.vm('b'), log.vm('b'));
    assert.match(logs[0]!, /3 unreadable records skipped/);
    rmSync(dir, { recursive: true });
  });

  test('history: samples of the host and of VMs still defined come back, with a gap; bad rows are skipped', async () => {
    const dir = tmp();
    const file = join(dir, 'history.jsonl');
    const row = (v: number | null) => HISTORY_FIELDS.map(() => v);
    const lines = [
      { k: 'ring', vm: 'keep', t: [1000, 3000], ...Object.fromEntries(HISTORY_FIELDS.map((f) => [f, [1, 2]])) },
      { k: 's', t: 5000, host: row(3), vms: { keep: row(3), gone: row(3) } },
      { k: 's', t: 7000, host: row(4), vms: { keep: row(4), forgotten: row(4) } },
      { k: 'forget', vm: 'forgotten' },
      { k: 's', t: 9000, host: row(5), vms: { keep: row(Number.NaN) } }, // NaN is null in JSON: kept as null
      { k: 's', t: 9500, host: ['x'], vms: {} },
      { k: 'ring', vm: 'keep', t: [1], cpuShare: [1, 2] },
      { k: 'what' },
    ];
    writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    const logs: string[] = [];
    const h = new HistoryRecorder(() => [], { file, points: 3, log: (m) => logs.push(m) });
    const r = h.load(new Set(['keep', 'forgotten']), 20_000);
    assert.equal(r.skipped, 3);
    const keep = h.vm('keep');
    // Bounded to the newest 3 samples, then a sample of nulls at the time of the start.
    assert.deepEqual(keep.t, [7000, 9000, 20_000]);
    assert.deepEqual(keep.mips, [4, null, null]);
    assert.deepEqual(h.vm('forgotten').t, [], 'forgotten before the restart');
    assert.deepEqual(h.vm('gone').t, [], 'not defined any more');
    assert.deepEqual(h.hostJSON().mips, [4, 5, null]);
    h.sample(21_000);
    assert.deepEqual(h.hostJSON().t, [9000, 20_000, 21_000]);
    await h.close();
    assert.match(logs[0]!, /3 unreadable records skipped/);
    rmSync(dir, { recursive: true });
  });

  test('a daemon started again on its state directory has its VM\'s samples and events', { timeout: budget(180_000) }, async () => {
    const { dir, images } = await makeImages(false);
    const opts: DaemonOptions = {
      socketPath: join(dir, 'd.sock'), stateDir: join(dir, 'state'), imagesDir: images, cpus: 1, memoryBudgetMiB: 256,
      wasmPath: defaultWasmPath(), debugFaults: false, hangTimeoutMs: 30_000, schedulerPeriodMs: 50, logMaxBytes: 1 << 20,
      workerMaxHeapMiB: 1024, version: 'test', log: () => {}, historyIntervalMs: 200,
    };
    let d = await startDaemon(opts);
    assert.equal((await api(d, 'POST', '/v1/vms', { name: 'spinner', memory: 16, kernel: 'spin' })).status, 201);
    assert.equal((await api(d, 'POST', '/v1/vms/spinner/start')).status, 200);
    await until('samples with MIPS', async () => ((await api(d, 'GET', '/v1/vms/spinner/history')).json.mips as (number | null)[]).filter((v) => v !== null && v > 0).length >= 3, 60_000, 100);
    const hist = (await api(d, 'GET', '/v1/vms/spinner/history')).json;
    const events = (await api(d, 'GET', '/v1/vms/spinner/events')).json;
    await d.close();
    d = await startDaemon(opts);
    try {
      // The HTTP agent may first try a kept-alive connection to the daemon that closed.
      await until('the daemon to answer again', () => api(d, 'GET', '/v1/vms').then(() => true, () => false), 10_000);
      const again = (await api(d, 'GET', '/v1/vms/spinner/history')).json;
      const n = hist.t.length;
      assert.deepEqual(again.t.slice(0, n), hist.t);
      assert.deepEqual(again.mips.slice(0, n), hist.mips);
      const evAgain = (await api(d, 'GET', '/v1/vms/spinner/events')).json as { kind: string }[];
      assert.deepEqual(evAgain.slice(0, events.length), events);
      // The stop at shutdown was recorded too.
      assert.ok(evAgain.slice(events.length).some((e) => e.kind === 'stopped'), JSON.stringify(evAgain));
      assert.equal((await api(d, 'GET', '/v1/vms/spinner')).json.state, 'stopped');
    } finally {
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// What the web console's pages read besides the VM list, against a real
// daemon on a temporary socket: the bounded history (a spinning guest shows
// CPU and MIPS, nothing while stopped, the host sums it), the events of a
// VM's life (created, started, paused, resumed, changed, snapshot, stopped,
// deleted), the images directory listing with kinds read from the files, the
// snapshots listing, and the failure line the console log gets.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { HistoryRing, HISTORY_FIELDS } from '../src/host/history.js';
import { EventLog } from '../src/host/events.js';
import { budget } from './lib/budget.js';

describe('history ring and event log', () => {
  test('the ring keeps the newest samples, oldest first', () => {
    const r = new HistoryRing(4);
    for (let i = 0; i < 7; i++) r.push(i, { cpuShare: i, mips: i * 10, memoryTouchedMiB: null, diskReadBps: 0, diskWriteBps: 0, netRxBps: 0, netTxBps: 0 });
    const j = r.toJSON();
    assert.deepEqual(j.t, [3, 4, 5, 6]);
    assert.deepEqual(j.mips, [30, 40, 50, 60]);
    assert.deepEqual(j.memoryTouchedMiB, [null, null, null, null]);
    for (const f of HISTORY_FIELDS) assert.equal(j[f].length, 4, f);
  });

  test('the event log is bounded per VM and for the host', () => {
    const log = new EventLog({ hostCapacity: 5, vmCapacity: 3 });
    for (let i = 0; i < 8; i++) log.add(i % 2 ? 'a' : null, 'x', `m${i}`);
    assert.deepEqual(log.host().map((e) => e.message), ['m3', 'm4', 'm5', 'm6', 'm7']);
    assert.deepEqual(log.vm('a').map((e) => e.message), ['m3', 'm5', 'm7']);
    log.forget('a');
    assert.deepEqual(log.vm('a'), []);
    assert.equal(log.add('a', 'x', 'y'.repeat(2000)).message.length, 500);
  });
});

describe('daemon: history, events, images, snapshots', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({ memoryBudgetMiB: 1024, cpus: 1, historyIntervalMs: 200, debugFaults: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(d.images, 'data.qcow2'), '1M']);
    writeFileSync(join(d.images, 'root.img'), Buffer.alloc(65536));
  });
  after(async () => {
    await d?.cleanup();
  });

  test('images: regular files with kinds read from their first bytes', async () => {
    const r = await api(d, 'GET', '/v1/images');
    assert.equal(r.status, 200, r.text);
    const kinds = Object.fromEntries((r.json as { name: string; kind: string }[]).map((i) => [i.name, i.kind]));
    assert.equal(kinds['data.qcow2'], 'qcow2');
    assert.equal(kinds['root.img'], 'disk');
    assert.ok('spin' in kinds && 'idle' in kinds, r.text);
    assert.equal((await api(d, 'POST', '/v1/images', {})).status, 405);
  });

  test('a spinning VM: history with CPU and MIPS, events of its life, a snapshot listed', { timeout: budget(120_000) }, async () => {
    assert.equal((await api(d, 'POST', '/v1/vms', { name: 'h1', memory: 16, kernel: 'spin' })).status, 201);
    assert.equal((await api(d, 'POST', '/v1/vms/h1/start')).status, 200);
    await until('MIPS in the history', async () => {
      const h = (await api(d, 'GET', '/v1/vms/h1/history')).json;
      return h.mips.some((v: number | null) => v !== null && v > 0) && h.cpuShare.some((v: number | null) => v !== null && v > 0);
    }, 60_000, 200);
    const h = (await api(d, 'GET', '/v1/vms/h1/history')).json;
    assert.equal(h.intervalMs, 200);
    assert.equal(h.capacity, 1800);
    for (const f of HISTORY_FIELDS) assert.equal(h[f].length, h.t.length, f);
    const host = (await api(d, 'GET', '/v1/host/history')).json;
    assert.ok(host.mips.some((v: number) => v > 0), 'the host history sums the VM');

    assert.equal((await api(d, 'POST', '/v1/vms/h1/pause')).status, 200);
    assert.equal((await api(d, 'POST', '/v1/vms/h1/resume')).status, 200);
    assert.equal((await api(d, 'PATCH', '/v1/vms/h1', { cpu: { weight: 300 } })).status, 200);
    const snap = await api(d, 'PUT', '/v1/vms/h1/snapshot', { dir: 'h1-snap' });
    assert.equal(snap.status, 200, snap.text);
    assert.equal((await api(d, 'POST', '/v1/vms/h1/stop')).status, 200);
    // Stopped: the samples after it have no values.
    const stoppedAt = Date.now();
    await until('a sample after the stop', async () => {
      const x = (await api(d, 'GET', '/v1/vms/h1/history')).json;
      return x.t.some((t: number, i: number) => t > stoppedAt && x.mips[i] === null);
    }, 30_000, 100);

    const events = (await api(d, 'GET', '/v1/vms/h1/events')).json as { kind: string; message: string; time: string; vm: string }[];
    assert.deepEqual(events.map((e) => e.kind), ['created', 'started', 'paused', 'resumed', 'changed', 'snapshot', 'stopped']);
    assert.match(events[4].message, /CPU weight 300/);
    assert.match(events[5].message, /snapshot h1-snap written/);
    assert.ok(events.every((e) => e.vm === 'h1' && !Number.isNaN(Date.parse(e.time))));

    const snaps = (await api(d, 'GET', '/v1/snapshots')).json as Record<string, unknown>[];
    assert.equal(snaps.length, 1);
    const { name, memory, nics, macs, usedBy, error } = snaps[0];
    assert.deepEqual({ name, memory, nics, macs, usedBy, error }, { name: 'h1-snap', memory: 16, nics: 0, macs: [], usedBy: [], error: undefined });

    assert.equal((await api(d, 'DELETE', '/v1/vms/h1')).status, 204);
    assert.equal((await api(d, 'GET', '/v1/vms/h1/events')).status, 404);
    assert.equal((await api(d, 'GET', '/v1/vms/h1/history')).status, 404);
    const hostEvents = (await api(d, 'GET', '/v1/host/events')).json as { kind: string; vm: string | null }[];
    assert.equal(hostEvents[0].kind, 'daemon');
    assert.deepEqual(hostEvents.filter((e) => e.vm === 'h1').map((e) => e.kind).slice(-2), ['stopped', 'deleted']);
  });

  test('a VM that fails: a failed event and the reason at the end of its console log', { timeout: budget(120_000) }, async () => {
    // The worker throws after 300 ms (fault injection, --debug-faults): the guest itself printed nothing.
    assert.equal((await api(d, 'POST', '/v1/vms', { name: 'stall', memory: 16, kernel: 'spin', debug: { failAfterMs: 300 } })).status, 201);
    assert.equal((await api(d, 'POST', '/v1/vms/stall/start')).status, 200);
    await until('stall failed', async () => (await api(d, 'GET', '/v1/vms/stall')).json.state === 'failed', 90_000, 200);
    const failure = (await api(d, 'GET', '/v1/vms/stall')).json.lastFailure as string;
    const events = (await api(d, 'GET', '/v1/vms/stall/events')).json as { kind: string; level: string; message: string }[];
    const failed = events.find((e) => e.kind === 'failed');
    assert.ok(failed, JSON.stringify(events));
    assert.equal(failed.level, 'error');
    assert.equal(failed.message, `failed: ${failure}`);
    await until('the failure line in the log', async () => (await api(d, 'GET', '/v1/vms/stall/log')).text.includes(`[tsvisor] stall failed: ${failure}`), 10_000, 100);
  });
});

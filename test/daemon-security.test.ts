// Security rules of the daemon against real daemons: stored definitions are
// checked like API input (bad ones kept aside and listed as broken), the
// socket path and token file checks, JSON-only bodies (415), a full state
// disk (507, no temp files), aborted requests, and the console bounds
// (message size, input backlog, slow readers, clients per VM).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { api, ConsoleClient, makeImages, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { startDaemon } from '../src/host/server.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { spewKernel } from './spew-kernel.js';
import { CLOSE_INPUT_BACKLOG, CLOSE_SLOW_READER, CONSOLE_MAX_MESSAGE_BYTES } from '../src/host/console-ws.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));

function daemonOpts(dir: string, images: string, logs: string[]) {
  return {
    socketPath: join(dir, 'd.sock'),
    stateDir: join(dir, 'state'),
    imagesDir: images,
    cpus: 1,
    memoryBudgetMiB: 256,
    wasmPath: defaultWasmPath(),
    debugFaults: false,
    hangTimeoutMs: 30_000,
    schedulerPeriodMs: 50,
    logMaxBytes: 1024 * 1024,
    workerMaxHeapMiB: 1024,
    version: 'test',
    log: (m: string) => logs.push(m),
  };
}

describe('stored definitions are checked at start', () => {
  test('bad files are kept aside, listed as broken, their names taken until deleted', async () => {
    const { dir, images } = await makeImages(false);
    const logs: string[] = [];
    const vmsDir = join(dir, 'state', 'vms');
    mkdirSync(vmsDir, { recursive: true });
    const good = (name: string, memory: unknown = 16, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ version: 1, createdAt: '2026-01-01T00:00:00.000Z', config: { name, memory, kernel: join(images, 'idle'), ...extra } });
    writeFileSync(join(vmsDir, 'ok.json'), good('ok'));
    writeFileSync(join(vmsDir, 'nan.json'), good('nan', 'NaN'));
    writeFileSync(join(vmsDir, 'neg.json'), good('neg', -4096));
    writeFileSync(join(vmsDir, 'huge.json'), good('huge', 1e300));
    writeFileSync(join(vmsDir, 'str.json'), good('str', '16'));
    writeFileSync(join(vmsDir, 'outside.json'), JSON.stringify({ version: 1, createdAt: '2026-01-01T00:00:00.000Z', config: { name: 'outside', memory: 16, kernel: '/etc/passwd' } }));
    writeFileSync(join(vmsDir, 'garbage.json'), '{"version": 1, "config": ');
    writeFileSync(join(vmsDir, 'renamed.json'), good('other'));
    writeFileSync(join(vmsDir, 'extra.json'), good('extra', 16, { shell: 'rm -rf /' }));
    writeFileSync(join(vmsDir, 'over.json'), good('over', 1024)); // valid, but more than the 256 MiB budget
    let d = await startDaemon(daemonOpts(dir, images, logs));
    try {
      const list = (await api(d, 'GET', '/v1/vms')).json as { name: string; state: string; reason?: string }[];
      const byName = new Map(list.map((v) => [v.name, v]));
      assert.equal(byName.get('ok')?.state, 'stopped');
      for (const n of ['nan', 'neg', 'huge', 'str', 'outside', 'garbage', 'renamed', 'extra', 'over']) {
        assert.equal(byName.get(n)?.state, 'broken', `${n}: ${JSON.stringify(byName.get(n))}`);
        assert.equal(typeof byName.get(n)?.reason, 'string');
      }
      assert.match(byName.get('nan')!.reason!, /config\.memory: must be integer/);
      assert.match(byName.get('outside')!.reason!, /config\.kernel: must be inside the images directory/);
      assert.match(byName.get('renamed')!.reason!, /does not match the file name/);
      assert.match(byName.get('extra')!.reason!, /config\.shell: unknown field/);
      assert.match(byName.get('over')!.reason!, /memory budget/);
      // Only the good VM reserves memory, whatever the bad files said.
      const stats = (await api(d, 'GET', '/v1/host/stats')).json;
      assert.equal(stats.memoryReservedMiB, 16);
      assert.equal(stats.byState.broken, 9);
      // Kept aside (renamed, not deleted), with the reason beside it.
      const files = readdirSync(vmsDir);
      assert.ok(files.some((f) => /^nan\.json\.broken-\d+$/.test(f)), files.join(' '));
      assert.ok(files.includes('over.json'), 'a valid definition over the budget stays in place');
      assert.ok(!files.includes('nan.json'));
      // The name is taken; actions are refused; the console too.
      const again = await api(d, 'POST', '/v1/vms', { name: 'nan', memory: 16, kernel: 'idle' });
      assert.equal(again.status, 409, again.text);
      assert.match(again.json.error, /broken/);
      assert.equal((await api(d, 'POST', '/v1/vms/nan/start')).status, 409);
      assert.equal((await api(d, 'GET', '/v1/vms/nan')).json.state, 'broken');
      // The CLI lists it with its reason.
      // (Not spawnSync: the daemon answering it runs in this process.)
      const ls = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [CLI, 'ls', '--socket', d.socketPath]);
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      assert.equal(ls.status, 0, ls.stderr);
      assert.match(ls.stdout, /^nan\s+broken\s+-.*config\.memory: must be integer$/m);
    } finally {
      await d.close();
    }
    // A second start still lists them (the kept files hold the names).
    d = await startDaemon(daemonOpts(dir, images, logs));
    try {
      // The HTTP agent may still hold a kept-alive connection to the first daemon.
      await until('the restarted daemon to answer', async () => (await api(d, 'GET', '/v1/vms').catch(() => null))?.status === 200, 10_000);
      const list = (await api(d, 'GET', '/v1/vms')).json as { name: string; state: string; reason: string }[];
      const nan = list.find((v) => v.name === 'nan');
      assert.equal(nan?.state, 'broken');
      assert.match(nan!.reason, /config\.memory/);
      // DELETE removes the entry and its kept files; the name is free again.
      assert.equal((await api(d, 'DELETE', '/v1/vms/nan')).status, 204);
      assert.equal((await api(d, 'DELETE', '/v1/vms/over')).status, 204);
      const files = readdirSync(vmsDir);
      assert.ok(!files.some((f) => f.startsWith('nan.') || f.startsWith('over.')), files.join(' '));
      const created = await api(d, 'POST', '/v1/vms', { name: 'nan', memory: 16, kernel: 'idle' });
      assert.equal(created.status, 201, created.text);
      assert.equal((await api(d, 'GET', '/v1/host/stats')).json.memoryReservedMiB, 32);
    } finally {
      await d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('small holes', () => {
  test('--socket refuses to remove anything but a stale socket', async () => {
    const { dir, images } = await makeImages(false);
    const logs: string[] = [];
    try {
      const file = join(dir, 'precious');
      writeFileSync(file, 'data');
      await assert.rejects(startDaemon({ ...daemonOpts(dir, images, logs), socketPath: file }), /not a socket; refusing/);
      assert.equal(readFileSync(file, 'utf8'), 'data');
      mkdirSync(join(dir, 'adir'));
      await assert.rejects(startDaemon({ ...daemonOpts(dir, images, logs), socketPath: join(dir, 'adir') }), /not a socket/);
      assert.ok(statSync(join(dir, 'adir')).isDirectory());
      // A socket nobody answers on is stale: replaced.
      const stale = join(dir, 'stale.sock');
      // A process killed while listening leaves its socket file behind.
      spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
      assert.ok(statSync(stale).isSocket());
      const d = await startDaemon({ ...daemonOpts(dir, images, logs), socketPath: stale });
      assert.equal((await api(d, 'GET', '/v1/vms')).status, 200);
      await d.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a token file group or others can read is refused, or used with --insecure-token-file', async () => {
    const { dir } = await makeImages(false);
    try {
      const tok = join(dir, 'token');
      writeFileSync(tok, 'a-long-enough-secret-token\n');
      chmodSync(tok, 0o644);
      const base = [CLI, 'serve', '--socket', join(dir, 's.sock'), '--state-dir', join(dir, 'state'), '--listen', '127.0.0.1:0', '--token-file', tok, '--cpus', '1', '--memory-budget', '64M'];
      const r = spawnSync(process.execPath, base, { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /mode 644 lets group or others read it/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      // With the override it starts (and warns); SIGTERM after the listening line.
      const p = spawn(process.execPath, [...base, '--insecure-token-file'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      await until('the daemon to listen', () => /listening on/.test(err) || p.exitCode !== null, 30_000);
      assert.match(err, /warning: .*mode 644/);
      assert.match(err, /listening on/);
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({ memoryBudgetMiB: 256 });
  });
  after(async () => {
    await d?.cleanup();
  });

  function raw(method: string, path: string, headers: Record<string, string>, body: Buffer | string): Promise<{ status: number; json: any }> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: d.socketPath, method, path, headers }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: t ? JSON.parse(t) : null }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  test('bodies that are not JSON get 415; invalid UTF-8 gets 400', async () => {
    const body = JSON.stringify({ name: 'ct', memory: 16, kernel: 'idle' });
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1']) {
      const r = await raw('POST', '/v1/vms', { 'content-type': ct }, body);
      assert.equal(r.status, 415, ct);
      assert.match(r.json.error, /^content-type: /);
    }
    const none = await raw('POST', '/v1/vms', {}, body);
    assert.equal(none.status, 415);
    const bad = await raw('POST', '/v1/vms', { 'content-type': 'application/json' }, Buffer.from('{"name":"\xff\xfe","memory":16,"kernel":"idle"}', 'latin1'));
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /invalid UTF-8/);
    const ok = await raw('POST', '/v1/vms', { 'content-type': 'application/json; charset=UTF-8' }, body);
    assert.equal(ok.status, 201);
    assert.equal((await api(d, 'DELETE', '/v1/vms/ct')).status, 204);
  });

  test('an aborted request is not logged as an internal error', async () => {
    const logs: string[] = [];
    const { dir, images } = await makeImages(false);
    const dd = await startDaemon(daemonOpts(dir, images, logs));
    try {
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve) => {
          const req = request({ socketPath: dd.socketPath, method: 'POST', path: '/v1/vms', headers: { 'content-type': 'application/json', 'content-length': '100000' } });
          req.on('error', () => resolve());
          req.write('{"name": "abort", "memory": 16, ');
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 50);
        });
      }
      // The daemon is fine and has logged nothing about it.
      await until('the daemon to settle', async () => (await api(dd, 'GET', '/v1/vms')).status === 200, 10_000);
      assert.deepEqual(logs.filter((l) => /internal error/.test(l)), []);
      assert.deepEqual((await api(dd, 'GET', '/v1/vms')).json, []);
    } finally {
      await dd.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a full state disk gives 507 and leaves no temp files', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('mounting a small tmpfs needs root');
    const { dir, images } = await makeImages(false);
    const state = join(dir, 'state');
    mkdirSync(state);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', state]);
    if (m.status !== 0) return t.skip(`cannot mount a tmpfs: ${m.stderr}`);
    const logs: string[] = [];
    let dd;
    try {
      dd = await startDaemon(daemonOpts(dir, images, logs));
      // Fill the file system, leaving less than a definition needs.
      const fill = spawnSync('dd', ['if=/dev/zero', `of=${join(state, 'fill')}`, 'bs=1k', 'count=1000']);
      assert.notEqual(fill.status, null);
      const r = await api(dd, 'POST', '/v1/vms', { name: 'full', memory: 16, kernel: 'idle', append: 'x'.repeat(2000) });
      assert.equal(r.status, 507, r.text);
      assert.match(r.json.error, /no space left/);
      assert.deepEqual(readdirSync(join(state, 'vms')), [], 'no definition and no temp file');
      assert.deepEqual((await api(dd, 'GET', '/v1/vms')).json, []);
      assert.equal((await api(dd, 'GET', '/v1/host/stats')).json.memoryReservedMiB, 0);
    } finally {
      await dd?.close();
      spawnSync('umount', [state]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function closed(ws: WebSocket, ms = 30_000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the console socket was not closed')), ms);
    ws.once('close', (code, reason) => {
      clearTimeout(t);
      resolve({ code, reason: reason.toString() });
    });
  });
}

describe('console bounds', () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon({ memoryBudgetMiB: 256, maxConsoleClients: 3 });
    writeFileSync(join(d.images, 'spew'), spewKernel());
    for (const [name, kernel] of [['quiet', 'idle'], ['loud', 'spew']]) {
      assert.equal((await api(d, 'POST', '/v1/vms', { name, memory: 16, kernel, deterministic: true })).status, 201);
      assert.equal((await api(d, 'POST', `/v1/vms/${name}/start`)).status, 200);
    }
  });
  after(async () => {
    await d?.cleanup();
  });

  test('an oversized message closes with 1009', async () => {
    const c = await ConsoleClient.open(d.socketPath, 'quiet');
    const done = closed(c.ws);
    c.ws.send(Buffer.alloc(CONSOLE_MAX_MESSAGE_BYTES + 1));
    assert.equal((await done).code, 1009);
  });

  test('input the guest does not take is refused with its close code', async () => {
    const c = await ConsoleClient.open(d.socketPath, 'quiet');
    const done = closed(c.ws);
    const chunk = Buffer.alloc(CONSOLE_MAX_MESSAGE_BYTES, 0x61);
    for (let i = 0; i < 64 && c.ws.readyState === c.ws.OPEN; i++) c.ws.send(chunk);
    const r = await done;
    assert.equal(r.code, CLOSE_INPUT_BACKLOG);
    assert.match(r.reason, /console input refused/);
    assert.equal((await api(d, 'GET', '/v1/vms/quiet')).json.state, 'running');
  });

  test('at most N clients per VM (429), a slot frees when one leaves', async () => {
    const cs = await Promise.all([1, 2, 3].map(() => ConsoleClient.open(d.socketPath, 'quiet')));
    await assert.rejects(ConsoleClient.open(d.socketPath, 'quiet'), /HTTP 429/);
    cs[0].ws.close();
    await closed(cs[0].ws);
    const again = await ConsoleClient.open(d.socketPath, 'quiet');
    again.close();
    for (const c of cs) c.close();
  });

  test('a slow reader is dropped with a reason; a reading client carries on', async () => {
    const slow = new WebSocket(`ws+unix://${d.socketPath}:/v1/vms/loud/console`);
    await new Promise((r, j) => {
      slow.once('open', r);
      slow.once('error', j);
    });
    // Stop reading from the socket: the daemon's output for it piles up.
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();
    const fast = await ConsoleClient.open(d.socketPath, 'loud');
    // The slow client's close frame cannot be read while paused; watch the daemon's count instead.
    const vm = d.host.vms.get('loud')!;
    await until('the slow client to be dropped', () => vm.consoleClients === 1, 60_000);
    const before = fast.output.length;
    await until('more output for the reading client', () => fast.output.length > before + 100_000, 30_000);
    assert.equal(fast.closed, false);
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    const r = await closed(slow).catch(() => ({ code: 1006, reason: '' }));
    assert.ok(r.code === CLOSE_SLOW_READER || r.code === 1006, `close code ${r.code}`);
    fast.close();
  });
});


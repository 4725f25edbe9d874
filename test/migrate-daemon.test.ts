// Live migration between two real daemons (separate state directories, one
// images directory: shared storage) on loopback, with a tiny CPU-bound guest:
// the VM moves and keeps counting at the destination, is gone at the source,
// and comes back; a destination without room refuses and the VM runs on at
// the source; a wrong token is refused; a hostile stream is dropped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { api, dirtyKernel, until, type TestDaemon } from './daemon-helpers.js';
import { daemonPair, migrateAndWait, tokenOf, urlOf } from './lib/migrate-pair.js';
import { FrameType, encodeFrame, encodeJson, MIGRATION_MAGIC, MIGRATION_VERSION } from '../src/vm/migration/stream.js';
import { budget } from './lib/budget.js';

const pair = daemonPair();
const instructions = async (d: TestDaemon, name: string) => (await api(d, 'GET', `/v1/vms/${name}/stats`)).json?.instructions as number;

test('a running VM moves to the other daemon and back, and keeps running', { timeout: budget(600_000) }, async () => {
  const { a, b } = pair;
  assert.equal((await api(a, 'POST', '/v1/vms', { name: 'mover', memory: 32, kernel: 'spin' })).status, 201);
  assert.equal((await api(a, 'POST', '/v1/vms/mover/start')).status, 200);
  await until('the guest to run', async () => (await instructions(a, 'mover')) > 1e6, 60_000);
  const st = await migrateAndWait(a, b, 'mover');
  assert.equal(st.phase, 'completed', JSON.stringify(st));
  assert.ok(st.bytesSent > 0 && st.round >= 1, JSON.stringify(st));
  assert.ok(typeof st.downtimeMs === 'number');
  // Gone at the source, running at the destination, and its instruction count continued (not a fresh boot).
  assert.equal((await api(a, 'GET', '/v1/vms/mover')).status, 404);
  const there = await api(b, 'GET', '/v1/vms/mover');
  assert.equal(there.json?.state, 'running', there.text);
  const n0 = await instructions(b, 'mover');
  await until('the guest to go on at the destination', async () => (await instructions(b, 'mover')) > n0 + 1e6, 60_000);

  const back = await migrateAndWait(b, a, 'mover');
  assert.equal(back.phase, 'completed', JSON.stringify(back));
  assert.equal((await api(b, 'GET', '/v1/vms/mover')).status, 404);
  assert.equal((await api(a, 'GET', '/v1/vms/mover')).json?.state, 'running');
  assert.equal((await api(a, 'DELETE', '/v1/vms/mover?force=true')).status, 204);
});

test('refusals reach the source and leave the VM running there', { timeout: budget(300_000) }, async () => {
  const { a, b } = pair;
  assert.equal((await api(a, 'POST', '/v1/vms', { name: 'big', memory: 600, kernel: 'spin' })).status, 201);
  assert.equal((await api(a, 'POST', '/v1/vms/big/start')).status, 200);
  // The destination's budget (1024 MiB) minus a VM of 600 MiB there leaves too little.
  assert.equal((await api(b, 'POST', '/v1/vms', { name: 'hog', memory: 600, kernel: 'idle' })).status, 201);
  const st = await migrateAndWait(a, b, 'big');
  assert.equal(st.phase, 'failed');
  assert.match(st.error, /memory/);
  // Name taken at the destination.
  assert.equal((await api(b, 'DELETE', '/v1/vms/hog')).status, 204);
  assert.equal((await api(b, 'POST', '/v1/vms', { name: 'big', memory: 16, kernel: 'idle' })).status, 201);
  const st2 = await migrateAndWait(a, b, 'big');
  assert.equal(st2.phase, 'failed');
  assert.match(st2.error, /already exists/);
  assert.equal((await api(b, 'DELETE', '/v1/vms/big')).status, 204);
  // A wrong token.
  const st3 = await migrateAndWait(a, b, 'big', { token: 'wrong-token-xxxxxxxx' });
  assert.equal(st3.phase, 'failed');
  assert.match(st3.error, /401|token/);
  // Through all that the VM ran on here.
  const n = await instructions(a, 'big');
  await until('the VM to go on at the source', async () => (await instructions(a, 'big')) > n + 1e6, 60_000);
  assert.equal((await api(a, 'GET', '/v1/vms/big')).json?.state, 'running');
  assert.equal((await api(b, 'GET', '/v1/vms')).json.length, 0, 'nothing left at the destination');
  assert.equal((await api(a, 'DELETE', '/v1/vms/big?force=true')).status, 204);
});

test('a hostile stream is dropped with nothing left behind', { timeout: budget(120_000) }, async () => {
  const { b } = pair;
  const send = (frames: Uint8Array[]) =>
    new Promise<string>((resolve) => {
      const s = connect(b.tcp!.port, '127.0.0.1');
      let got = '';
      s.on('data', (c) => (got += c.toString('latin1')));
      s.on('close', () => resolve(got));
      s.on('error', () => {});
      s.write(`POST /v1/migrations/incoming HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: tsvisor-migration\r\nauthorization: Bearer ${tokenOf(b)}\r\n\r\n`);
      for (const f of frames) s.write(f);
      setTimeout(() => s.end(), 500);
    });
  const hello = { magic: MIGRATION_MAGIC, version: MIGRATION_VERSION, id: 'hostile-0001', name: 'h', memMiB: 16, definition: { name: 'h', memory: 16, kernel: 'idle' }, diskSizes: [] };
  // A page outside guest RAM after a valid HELLO.
  const bad = new Uint8Array(8);
  new DataView(bad.buffer).setUint32(0, 1, true);
  new DataView(bad.buffer).setUint32(4, 0x7fffffff, true);
  const out = await send([encodeJson(FrameType.HELLO, hello), encodeFrame(FrameType.PAGES, bad)]);
  assert.match(out, /outside guest RAM/);
  // A corrupt checksum, and a newer version.
  const corrupt = encodeJson(FrameType.HELLO, { ...hello, id: 'hostile-0002' });
  corrupt[20] ^= 0xff;
  await send([corrupt]);
  const newer = await send([encodeJson(FrameType.HELLO, { ...hello, id: 'hostile-0003', version: MIGRATION_VERSION + 1 })]);
  assert.match(newer, /version/);
  assert.equal((await api(b, 'GET', '/v1/vms')).json.length, 0);
  assert.equal(b.host.incoming.size, 0);
});

test('tsvisor migrate: moves a VM from the command line, reports the result, and refuses bad options', { timeout: budget(300_000) }, async () => {
  const { a, b } = pair;
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const cli = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
  const tokenFile = join(a.dir, 'b.token');
  writeFileSync(tokenFile, `${tokenOf(b)}\n`, { mode: 0o600 });
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const c = spawn(process.execPath, [cli, 'migrate', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (x: Buffer) => (out += x.toString()));
      c.stderr.on('data', (x: Buffer) => (err += x.toString()));
      c.on('close', (code) => resolve({ code, out, err }));
    });
  assert.equal((await api(a, 'POST', '/v1/vms', { name: 'clivm', memory: 16, kernel: 'spin' })).status, 201);
  assert.equal((await api(a, 'POST', '/v1/vms/clivm/start')).status, 200);
  const bad = await run(['clivm', '--socket', a.socketPath, '--to', urlOf(b)]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /--token-file/);
  const badLimit = await run(['clivm', '--socket', a.socketPath, '--to', urlOf(b), '--token-file', tokenFile, '--downtime-limit', 'x']);
  assert.match(badLimit.err, /--downtime-limit/);
  const ok = await run(['clivm', '--socket', a.socketPath, '--to', urlOf(b), '--token-file', tokenFile, '--downtime-limit', '200']);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /clivm: migrated to http:\/\/127\.0\.0\.1:\d+ in [\d.]+ s, downtime \d+ ms, [\d.]+ MiB in \d+ rounds, throttle \d+%/);
  assert.equal((await api(b, 'GET', '/v1/vms/clivm')).json?.state, 'running');
  // --cancel with nothing running is a clear error.
  const c2 = await run(['clivm', '--socket', b.socketPath, '--cancel']);
  assert.notEqual(c2.code, 0);
  assert.match(c2.err, /not migrating|no migration/);
  assert.equal((await api(b, 'DELETE', '/v1/vms/clivm?force=true')).status, 204);
});

test('auto-converge: a guest that dirties memory faster than the downtime limit allows is throttled, and still moves', { timeout: budget(600_000) }, async () => {
  const { a, b } = pair;
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  writeFileSync(join(a.images, 'dirty'), dirtyKernel());
  assert.equal((await api(a, 'POST', '/v1/vms', { name: 'dirty', memory: 32, kernel: 'dirty' })).status, 201);
  assert.equal((await api(a, 'POST', '/v1/vms/dirty/start')).status, 200);
  await until('the guest to run', async () => (await instructions(a, 'dirty')) > 1e6, 60_000);
  // 1 ms cannot hold 8 MiB: rounds do not shrink until the throttle has slowed the guest down.
  const st = await migrateAndWait(a, b, 'dirty', { downtimeLimitMs: 1 });
  assert.equal(st.phase, 'completed', JSON.stringify(st));
  // The throttle rose step by step until the rest fit (or the round limit ended it).
  assert.ok(st.throttlePercent >= 20, `throttled: ${JSON.stringify(st)}`);
  assert.ok(st.round >= 2, `several rounds: ${JSON.stringify(st)}`);
  assert.ok(st.pagesSent > 2 * 2048, `the guest's pages were sent again in later rounds: ${JSON.stringify(st)}`);
  const n0 = await instructions(b, 'dirty');
  await until('the guest to go on at the destination', async () => (await instructions(b, 'dirty')) > n0 + 1e6, 60_000);
  assert.equal((await api(b, 'DELETE', '/v1/vms/dirty?force=true')).status, 204);
});

test('a process-isolated VM is refused with a clear error at both ends and runs on at the source', { timeout: budget(300_000) }, async () => {
  const { a, b } = pair;
  assert.equal((await api(a, 'POST', '/v1/vms', { name: 'proc', memory: 16, kernel: 'spin', isolation: 'process' })).status, 201);
  assert.equal((await api(a, 'POST', '/v1/vms/proc/start')).status, 200);
  await until('the guest to run', async () => (await instructions(a, 'proc')) > 1e6, 120_000);
  const r = await api(a, 'POST', '/v1/vms/proc/migrate', { to: urlOf(b), token: tokenOf(b) });
  assert.equal(r.status, 409, r.text);
  assert.match(r.text, /own process: only thread-isolated VMs can migrate/);
  // A source that sends one anyway is refused by the destination, which keeps nothing.
  const out = await new Promise<string>((resolve) => {
    const s = connect(b.tcp!.port, '127.0.0.1');
    let got = '';
    s.on('data', (c) => (got += c.toString('latin1')));
    s.on('close', () => resolve(got));
    s.on('error', () => {});
    s.write(`POST /v1/migrations/incoming HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: tsvisor-migration\r\nauthorization: Bearer ${tokenOf(b)}\r\n\r\n`);
    s.write(encodeJson(FrameType.HELLO, {
      magic: MIGRATION_MAGIC, version: MIGRATION_VERSION, id: 'process-vm-0001', name: 'proc', memMiB: 16,
      definition: { name: 'proc', memory: 16, kernel: 'spin', isolation: 'process' }, diskSizes: [],
    }));
    setTimeout(() => s.end(), 500);
  });
  assert.match(out, /only thread-isolated VMs can migrate/);
  assert.equal((await api(b, 'GET', '/v1/vms')).json.length, 0);
  const n = await instructions(a, 'proc');
  await until('the VM to go on at the source', async () => (await instructions(a, 'proc')) > n + 1e6, 120_000);
  assert.equal((await api(a, 'DELETE', '/v1/vms/proc?force=true')).status, 204);
});

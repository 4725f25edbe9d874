// Live migration end to end with the default guest (real kernel, busybox) between
// two `tsvisor serve` daemons on loopback: separate state directories, one images
// directory (shared storage), a raw disk made by qemu-img with ext4 on it.
//
// The guest runs a workload that keeps rewriting a 4 MiB buffer in RAM (tmpfs),
// prints a running checksum to the console and writes + fsyncs it to a file on
// the disk. The VM moves there, back, then ten times in a row; then faults: the
// stream cut at random points by a small TCP proxy (ten runs), the destination
// daemon SIGKILLed during the transfer. Every time the VM runs in exactly one
// place, the console's TICK lines (both daemons' logs together) continue without
// a gap with the right checksums, and the file holds the latest fsynced write.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, makeImages, until } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const TIMEOUT_MS = 40 * 60 * 1000;
const have = (t: string) => spawnSync('sh', ['-c', `command -v ${t} || test -x /usr/sbin/${t} || test -x /sbin/${t}`]).status === 0;
const missing = ['qemu-img', 'mkfs.ext4'].filter((t) => !have(t));
const sbin = (t: string) => (spawnSync('sh', ['-c', `command -v ${t}`]).status === 0 ? t : `/usr/sbin/${t}`);

interface ChildDaemon {
  name: string;
  child: ChildProcess;
  sock: string;
  port: number;
  token: string;
  stateDir: string;
  log: () => string;
}

let dir = '';
let images = '';
const daemons: ChildDaemon[] = [];
const proxies: Server[] = [];

async function startDaemon(name: string, port = 0): Promise<ChildDaemon> {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const token = `token-${name}-0123456789abcdef`;
  writeFileSync(join(d, 'token'), token, { mode: 0o600 });
  const sock = join(d, 'd.sock');
  const stateDir = join(d, 'state');
  const child = spawn(process.execPath, [CLI, 'serve', '--socket', sock, '--state-dir', stateDir, '--images-dir', images, '--memory-budget', '1G', '--cpus', '1',
    '--listen', `127.0.0.1:${port}`, '--token-file', join(d, 'token')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout!.on('data', (b: Buffer) => (err += b.toString()));
  await until(`daemon ${name} to listen`, () => /listening on .* and 127\.0\.0\.1:\d+/.test(err) || child.exitCode !== null, 60_000);
  const m = /and 127\.0\.0\.1:(\d+)/.exec(err);
  assert.ok(m, `daemon ${name} did not start: ${err}`);
  const cd = { name, child, sock, port: Number(m[1]), token, stateDir, log: () => err };
  daemons.push(cd);
  return cd;
}

async function stopDaemon(d: ChildDaemon, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const gone = new Promise((r) => d.child.once('exit', r));
  d.child.kill(signal);
  await gone;
}

before(async () => {
  if (missing.length) return;
  const m = await makeImages(true);
  dir = m.dir;
  images = m.images;
});
after(async () => {
  for (const p of proxies) p.close();
  for (const d of daemons) await stopDaemon(d, 'SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A TCP proxy to `port` that cuts its first connection after `cutAfter` bytes from the client; later connections pass. */
async function cuttingProxy(port: number, cutAfter: number): Promise<{ port: number; cut: () => boolean }> {
  let first = true;
  let didCut = false;
  const srv = createServer((c: Socket) => {
    const up = connect(port, '127.0.0.1');
    const mine = first;
    first = false;
    let n = 0;
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
    up.on('data', (b) => c.write(b));
    up.on('close', () => c.destroy());
    c.on('close', () => up.destroy());
    c.on('data', (b: Buffer) => {
      if (!mine) return void up.write(b);
      const room = cutAfter - n;
      n += b.length;
      if (room >= b.length) return void up.write(b);
      if (room > 0) up.write(b.subarray(0, room));
      didCut = true;
      c.destroy();
      up.destroy();
    });
  });
  proxies.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as { port: number }).port, cut: () => didCut };
}

/** The guest's checksum after i iterations, computed the same way here. */
function checksum(n: number): number {
  let s = 0;
  for (let i = 1; i <= n; i++) s = (s * 31 + i) % 1000003;
  return s;
}

/** TICK lines of both daemons' console logs, in order; checks they form one run without gaps. */
async function checkTicks(all: ChildDaemon[]): Promise<number> { // eslint-disable-line @typescript-eslint/require-await
  const seen = new Map<number, number>();
  // Read from the daemons' log directories: a daemon keeps the console log of a VM that left it.
  for (const d of all) {
    for (const f of ['work.log.1', 'work.log']) {
      const path = join(d.stateDir, 'logs', f);
      if (!existsSync(path)) continue;
      for (const m of readFileSync(path, 'latin1').matchAll(/TICK (\d+) (\d+)/g)) seen.set(Number(m[1]), Number(m[2]));
    }
  }
  const ks = [...seen.keys()].sort((x, y) => x - y);
  if (ks.length === 0) return 0;
  // The log on a killed daemon is lost with it, so a run starts at the first tick still logged somewhere.
  for (let i = 1; i < ks.length; i++) assert.equal(ks[i], ks[i - 1] + 1, `the workload's output has a gap after TICK ${ks[i - 1]}`);
  for (const k of ks) assert.equal(seen.get(k), checksum(k), `TICK ${k} has a wrong checksum`);
  return ks[ks.length - 1];
}

async function whereRuns(all: ChildDaemon[]): Promise<ChildDaemon[]> {
  const out: ChildDaemon[] = [];
  for (const d of all) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) continue;
    const r = await api({ socketPath: d.sock }, 'GET', '/v1/vms/work');
    if (r.status === 200 && r.json?.state === 'running') out.push(d);
  }
  return out;
}

async function migrate(from: ChildDaemon, toUrl: string, toToken: string): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await api({ socketPath: from.sock }, 'POST', '/v1/vms/work/migrate', { to: toUrl, token: toToken });
  assert.equal(r.status, 202, r.text);
  let st: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
  await until('the migration to end', async () => {
    st = (await api({ socketPath: from.sock }, 'GET', '/v1/vms/work/migrate')).json ?? {};
    return ['completed', 'failed', 'cancelled'].includes(st.phase);
  }, 600_000, 100);
  return st;
}

/** Wait until the workload printed more ticks (on whichever daemon runs it). */
async function ticksGoOn(all: ChildDaemon[], after: number): Promise<number> {
  let last = after;
  await until(`the workload to go on past TICK ${after}`, async () => (last = await checkTicks(all)) > after + 2, 300_000, 500, () => daemons.map((d) => `${d.name}: ${d.log().slice(-500)}`).join('\n'));
  return last;
}

test('a VM with a disk and a busy workload migrates there, back, ten times, and survives cut streams and a killed destination', { timeout: budget(TIMEOUT_MS), skip: missing.length ? `missing ${missing.join(', ')}` : false }, async () => {
  const img = join(images, 'data.img');
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'raw', img, '32M']).status, 0);
  const mk = spawnSync(sbin('mkfs.ext4'), ['-q', '-F', img], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const a = await startDaemon('a');
  let b = await startDaemon('b');
  const url = (d: ChildDaemon) => `http://127.0.0.1:${d.port}`;
  const r = await api({ socketPath: a.sock }, 'POST', '/v1/vms', { name: 'work', kernel: 'vmlinux', initrd: 'initrd', memory: 128, disks: [{ path: 'data.img', format: 'raw' }] });
  assert.equal(r.status, 201, r.text);
  assert.equal((await api({ socketPath: a.sock }, 'POST', '/v1/vms/work/start')).status, 200);
  const c = await ConsoleClient.open(a.sock, 'work');
  await c.waitFor('tsvisor guest ready', 600_000);
  await c.waitFor(/# (\x1b\[6n)?$/, 120_000, c.output.indexOf('tsvisor guest ready'));
  c.send('mkdir -p /mnt && mount /dev/vda /mnt && echo mounted-$((6*7))\r');
  await c.waitFor('mounted-42', 120_000);
  // The workload: rewrite 4 MiB of RAM, print the running checksum, write + fsync it to the disk.
  c.send('(i=0; s=0; while true; do i=$((i+1)); s=$(( (s*31+i) % 1000003 )); dd if=/dev/urandom of=/tmp/buf bs=64k count=64 2>/dev/null; echo "TICK $i $s"; echo "$i $s" > /mnt/state.tmp && mv /mnt/state.tmp /mnt/state && sync; done) &\r');
  c.close();
  let last = await ticksGoOn([a, b], 0);

  const hop = async (from: ChildDaemon, to: ChildDaemon) => {
    const st = await migrate(from, url(to), to.token);
    assert.equal(st.phase, 'completed', JSON.stringify(st));
    assert.deepEqual((await whereRuns([a, b])).map((d) => d.name), [to.name], `after ${JSON.stringify(st)}: ${(await api({ socketPath: to.sock }, 'GET', '/v1/vms/work')).text}\n${daemons.map((d) => `${d.name}: ${d.log().slice(-1500)}`).join('\n')}`);
    last = await ticksGoOn([a, b], last);
    return st;
  };
  const first = await hop(a, b);
  await hop(b, a);
  const results = [first];
  for (let k = 0; k < 10; k++) results.push(await hop(k % 2 === 0 ? a : b, k % 2 === 0 ? b : a));
  // After ten (an even number) it is back on a.
  const home = (await whereRuns([a, b]))[0];
  assert.equal(home.name, 'a');
  const downs = results.map((s) => Math.round(s.downtimeMs));
  process.stderr.write(`# migrations: downtime ms ${downs.join(' ')}; MiB ${results.map((s) => (s.bytesSent / 1048576).toFixed(1)).join(' ')}; rounds ${results.map((s) => s.round + 1).join(' ')}\n`);

  // Cut streams: ten runs, each cut after a random number of bytes.
  const total = Math.max(...results.map((s) => s.bytesSent));
  for (let k = 0; k < 10; k++) {
    const [src] = await whereRuns([a, b]);
    const dst = src === a ? b : a;
    const proxy = await cuttingProxy(dst.port, Math.floor(Math.random() * total));
    const st = await migrate(src, `http://127.0.0.1:${proxy.port}`, dst.token);
    const runs = await whereRuns([a, b]);
    assert.equal(runs.length, 1, `the VM runs in exactly one place (${runs.map((d) => d.name)}) after ${JSON.stringify(st)}`);
    if (st.phase === 'completed') assert.equal(runs[0], dst);
    else assert.equal(runs[0], src, `a failed migration leaves the VM at the source: ${JSON.stringify(st)}`);
    const dstList = (await api({ socketPath: dst.sock }, 'GET', '/v1/vms')).json as { name: string }[];
    if (st.phase !== 'completed') assert.equal(dstList.length, 0, 'nothing left at the destination');
    last = await ticksGoOn([a, b], last);
  }

  // SIGKILL the destination during the transfer.
  const [src] = await whereRuns([a, b]);
  const dst = src === a ? b : a;
  const started = await api({ socketPath: src.sock }, 'POST', '/v1/vms/work/migrate', { to: url(dst), token: dst.token });
  assert.equal(started.status, 202, started.text);
  await until('the transfer to start', async () => {
    const s = (await api({ socketPath: src.sock }, 'GET', '/v1/vms/work/migrate')).json;
    return s?.phase !== 'connecting' || ['failed', 'completed'].includes(s?.phase);
  }, 120_000, 20);
  await stopDaemon(dst, 'SIGKILL');
  let st: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
  await until('the migration to end', async () => {
    st = (await api({ socketPath: src.sock }, 'GET', '/v1/vms/work/migrate')).json ?? {};
    return ['completed', 'failed', 'cancelled'].includes(st.phase);
  }, 600_000, 100);
  assert.equal(st.phase, 'failed', JSON.stringify(st));
  assert.deepEqual((await whereRuns([src])).map((d) => d.name), [src.name]);
  // Both logs still count: the killed daemon's file holds the ticks printed while the VM ran there.
  last = await ticksGoOn([a, b], last);
  // The killed daemon comes back with nothing of the VM.
  const again = await startDaemon(dst.name, dst.port);
  if (dst === b) b = again;
  assert.equal(((await api({ socketPath: again.sock }, 'GET', '/v1/vms')).json as unknown[]).length, 0);

  // The file on disk holds the latest fsynced write (read in the guest, where the VM runs now).
  const con = await ConsoleClient.open(src.sock, 'work');
  const from = con.output.length;
  // Marked, so neither the console replay on attach nor the loop's TICK lines can be taken for it.
  con.send('echo "FILE-$(cat /mnt/state)-END"\r');
  await con.waitFor(/FILE-\d+ \d+-END/, 120_000, from);
  const fm = /FILE-(\d+) (\d+)-END/.exec(con.output.slice(from));
  assert.ok(fm, `state file: ${con.output.slice(from)}`);
  assert.equal(Number(fm[2]), checksum(Number(fm[1])), 'the file holds a consistent record');
  assert.ok(Number(fm[1]) >= last - 2, `the file is current (${fm[1]}, console at ${last})`);
  con.close();
  await checkTicks([a, b]);
});

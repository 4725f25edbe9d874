// Isolation "process": a VM in its own child process next to one in a worker
// thread. Both boot the real guest and answer on their consoles; the process
// VM's pid is in inspect, its counters in stats. SIGKILL of that pid marks
// only that VM failed (with the signal as the reason) and the restart policy
// applies; rm, daemon shutdown and a daemon killed outright leave no VM
// process behind. Device commands, limits, pause and NIC backends work in
// the child, a worker fault's reason comes through, a child that stops
// reporting is failed, and CPU weights hold between a process and a thread VM. A bad isolation value is a 400 naming the field.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, makeImages, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';
import { freePort } from './lib/free-port.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon({ withGuest: true, cpus: 2 });
});
after(async () => {
  await d?.cleanup();
});

/** Is `pid` a live process? (A zombie waiting for its reaper counts as gone.) */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function inspect(name: string, where: { socketPath: string } = d): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await api(where, 'GET', `/v1/vms/${name}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function createAndStart(body: Record<string, unknown>, where: { socketPath: string } = d): Promise<void> {
  const r = await api(where, 'POST', '/v1/vms', body);
  assert.equal(r.status, 201, r.text);
  const s = await api(where, 'POST', `/v1/vms/${String(body.name)}/start`);
  assert.equal(s.status, 200, `${s.status} ${s.text}`);
}

/** Type a shell command and wait for its answer. */
async function ask(con: ConsoleClient, command: string, answer: RegExp): Promise<void> {
  const mark = con.output.length;
  con.send(`${command}\n`);
  await con.waitFor(answer, 60_000, mark);
}

test('isolation: bad values are 400 naming the field; the schema shows it', async () => {
  const bad = await api(d, 'POST', '/v1/vms', { name: 'x', memory: 16, kernel: 'idle', isolation: 'vm' });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error, 'isolation: must be one of thread, process');
  const wrongType = await api(d, 'POST', '/v1/vms', { name: 'x', memory: 16, kernel: 'idle', isolation: true });
  assert.equal(wrongType.status, 400);
  assert.equal(wrongType.json.error, 'isolation: must be string');
  const doc = (await api(d, 'GET', '/v1/openapi.json')).json;
  assert.deepEqual(doc.components.schemas.CreateVm.properties.isolation.enum, ['thread', 'process']);
  assert.equal((await api(d, 'GET', '/v1/vms/x')).status, 404, 'nothing created');
});

test('a process VM and a thread VM boot side by side; SIGKILL of the process fails only that VM', { timeout: budget(600_000) }, async () => {
  const guest = { memory: 128, kernel: 'vmlinux', initrd: 'initrd', deterministic: true };
  await createAndStart({ name: 'proc', isolation: 'process', ...guest });
  await createAndStart({ name: 'thr', ...guest });
  const p = await inspect('proc');
  assert.equal(p.isolation, 'process');
  assert.equal(p.config.isolation, 'process');
  assert.equal(typeof p.pid, 'number');
  assert.notEqual(p.pid, process.pid);
  assert.ok(alive(p.pid), 'the VM process runs');
  const t = await inspect('thr');
  assert.equal(t.isolation, 'thread');
  assert.equal(t.pid, null);

  const conP = await ConsoleClient.open(d.socketPath, 'proc');
  const conT = await ConsoleClient.open(d.socketPath, 'thr');
  for (const con of [conP, conT]) {
    await con.waitFor(READY_LINE, 400_000);
    await con.waitFor('# ', 60_000, con.output.indexOf(READY_LINE));
  }
  await ask(conP, 'echo $((6*7))', /\r?\n42\r?\n/);

  const stats = (await api(d, 'GET', '/v1/vms/proc/stats')).json;
  assert.ok(stats.instructions > 1e6, `instructions ${stats.instructions}`);
  assert.ok(stats.busyUs > 0);
  assert.ok(['running', 'idle', 'throttled'].includes(stats.runState), stats.runState);
  const metrics = (await api(d, 'GET', '/metrics')).text;
  assert.match(metrics, /tsvisor_vm_guest_instructions_total\{vm="proc"\} [1-9]/);

  process.kill(p.pid, 'SIGKILL');
  await until('proc failed', async () => (await inspect('proc')).state === 'failed', 30_000, 100);
  const dead = await inspect('proc');
  assert.equal(dead.lastFailure, 'VM process killed by SIGKILL');
  assert.equal(dead.pid, null);
  assert.equal(d.host.vms.get('proc')!.handle, null, 'released');
  await until('console closed', () => conP.closed, 5000);

  // The thread VM never noticed.
  await ask(conT, 'echo $((7*8))', /\r?\n56\r?\n/);
  assert.equal((await inspect('thr')).state, 'running');
  conT.close();

  assert.equal((await api(d, 'DELETE', '/v1/vms/proc')).status, 204);
  assert.equal((await api(d, 'DELETE', '/v1/vms/thr?force=true')).status, 204);
});

test('restart policy after a killed VM process; rm and daemon shutdown leave no VM process', { timeout: budget(120_000) }, async () => {
  await createAndStart({ name: 'again', memory: 16, kernel: 'spin', isolation: 'process', restart: { policy: 'on-failure', maxRetries: 1 } });
  const first = (await inspect('again')).pid as number;
  await until('instructions reported', async () => (await api(d, 'GET', '/v1/vms/again/stats')).json.instructions > 0, 30_000, 50);
  process.kill(first, 'SIGKILL');
  await until('restarted', async () => {
    const vm = await inspect('again');
    return vm.restarts === 1 && vm.state === 'running' && typeof vm.pid === 'number';
  }, 30_000, 100);
  const second = (await inspect('again')).pid as number;
  assert.notEqual(second, first);
  assert.equal((await inspect('again')).lastFailure, 'VM process killed by SIGKILL');
  assert.equal(alive(first), false);

  // rm --force of a running process VM ends its process.
  assert.equal((await api(d, 'DELETE', '/v1/vms/again?force=true')).status, 204);
  assert.equal(alive(second), false, 'no VM process after rm');

  // Daemon shutdown stops the VM processes it owns.
  await createAndStart({ name: 'last', memory: 16, kernel: 'idle', isolation: 'process' });
  const last = (await inspect('last')).pid as number;
  assert.ok(alive(last));
  await d.close();
  assert.equal(alive(last), false, 'no VM process after the daemon stopped');
});

test('tsvisor create --isolation; a daemon killed outright takes its VM processes with it', { timeout: budget(60_000) }, async () => {
  const { dir, images } = await makeImages(false);
  const sock = join(dir, 'k.sock');
  const daemon = spawn(process.execPath, [CLI, 'serve', '--socket', sock, '--state-dir', join(dir, 'state'), '--images-dir', images, '--memory-budget', '1G', '--cpus', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  daemon.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  try {
    await until('daemon up', () => err.includes('listening on'), 20_000);
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, '--socket', sock], { encoding: 'utf8' });
    const bad = cli('create', 'orphan', '--kernel', 'spin', '--mem', '16M', '--isolation', 'vm');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /invalid --isolation 'vm': expected thread or process/);
    const c = cli('create', 'orphan', '--kernel', 'spin', '--mem', '16M', '--isolation', 'process', '--start');
    assert.equal(c.status, 0, c.stderr);
    assert.match(cli('ls').stdout, /orphan\s+running\s+16M\s+1024\s+-\s+process\s+-/);
    const pid = (await inspect('orphan', { socketPath: sock })).pid as number;
    assert.ok(alive(pid));
    daemon.kill('SIGKILL');
    // The VM process sees its IPC channel close and leaves.
    await until('VM process gone', () => !alive(pid), 10_000, 50);
  } finally {
    daemon.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('in a process VM: device commands, limits, pause, NIC backends (hostfwd listens in the child); a silent child is failed', { timeout: budget(120_000) }, async () => {
  const d2 = await startTestDaemon({ cpus: 1, hangTimeoutMs: 2000, debugFaults: true });
  try {
    writeFileSync(join(d2.images, 'disk.img'), Buffer.alloc(1024 * 1024));
    const port = await freePort();
    const body = {
      name: 'dev', memory: 16, kernel: 'spin', isolation: 'process', balloon: true,
      // A test kernel that spins on purpose, with a disk: the boot watch would fail it as never come up.
      bootWatch: false,
      disks: [{ path: 'disk.img', limits: { bps: 1048576 } }],
      nics: [{ mode: 'user', hostfwd: [`tcp:127.0.0.1:${port}-:80`] }],
    };
    await createAndStart(body, d2);
    await until('hostfwd port open', () => canConnect(port), 10_000, 50);
    // Device counters are published by the worker shortly after it starts.
    await until('device counters published', async () => (await api(d2, 'GET', '/v1/vms/dev/stats')).json.devices.disks.length === 1, 30_000);
    const s0 = (await api(d2, 'GET', '/v1/vms/dev/stats')).json;
    assert.deepEqual(s0.devices.disks[0].limits.bandwidth, { size: 1048576, refillMs: 1000 });
    assert.equal(s0.devices.nics.length, 1);
    assert.match(s0.devices.nics[0].backend, /^user /);
    const r = await api(d2, 'PATCH', '/v1/vms/dev', { disks: [{ index: 0, limits: { iops: 100 } }], nics: [{ index: 0, limits: { rxPps: 10 } }], balloon: { targetMiB: 4 } });
    assert.equal(r.status, 200, r.text);
    const s1 = (await api(d2, 'GET', '/v1/vms/dev/stats')).json;
    assert.deepEqual(s1.devices.disks[0].limits.ops, { size: 100, refillMs: 1000 });
    assert.ok(s1.devices.balloon, 'balloon stats present');

    // Pause holds the guest still; resume lets it go on.
    assert.equal((await api(d2, 'POST', '/v1/vms/dev/pause')).status, 200);
    await until('paused', async () => (await api(d2, 'GET', '/v1/vms/dev/stats')).json.runState === 'paused', 5000, 50);
    const held = (await api(d2, 'GET', '/v1/vms/dev/stats')).json.instructions;
    await new Promise((res) => setTimeout(res, 300));
    assert.equal((await api(d2, 'GET', '/v1/vms/dev/stats')).json.instructions, held);
    assert.equal((await api(d2, 'POST', '/v1/vms/dev/resume')).status, 200);
    await until('running again', async () => (await api(d2, 'GET', '/v1/vms/dev/stats')).json.instructions > held, 5000, 50);

    // A busy hostfwd port stops the start with a 409, and no VM process is left.
    await createAndStart({ name: 'busy', memory: 16, kernel: 'idle', isolation: 'process', nics: [{ mode: 'user', hostfwd: [`tcp:127.0.0.1:${port}-:80`] }] }, d2).then(
      () => assert.fail('start should have failed'),
      (e: Error) => assert.match(e.message, /409.*address already in use/s),
    );
    assert.equal((await inspect('busy', d2)).state, 'created', 'not half-started');

    // A worker that throws inside the VM process: its reason comes through, and the process ends.
    await createAndStart({ name: 'crash', memory: 16, kernel: 'spin', isolation: 'process', debug: { failAfterMs: 300 } }, d2);
    const crashPid = (await inspect('crash', d2)).pid as number;
    await until('crash failed', async () => (await inspect('crash', d2)).state === 'failed', 15_000, 100);
    assert.match((await inspect('crash', d2)).lastFailure, /injected fault/);
    await until('crashed VM process gone', () => !alive(crashPid), 5000, 50);

    // A VM process that stops reporting (SIGSTOP) is failed and ended, and its host port is freed.
    const pid = (await inspect('dev', d2)).pid as number;
    process.kill(pid, 'SIGSTOP');
    await until('dev failed', async () => (await inspect('dev', d2)).state === 'failed', 15_000, 100);
    assert.match((await inspect('dev', d2)).lastFailure, /^(hung: no progress reported|VM process stopped reporting)/);
    assert.equal(alive(pid), false);
    await until('hostfwd port closed', async () => !(await canConnect(port)), 5000, 50);
  } finally {
    await d2.cleanup();
  }
});

test('fair share holds across isolation: a process VM at weight 1 beside a thread VM at weight 3', { timeout: budget(60_000) }, async () => {
  const d3 = await startTestDaemon({ cpus: 1 });
  try {
    await createAndStart({ name: 'p', memory: 16, kernel: 'spin', isolation: 'process', cpu: { weight: 1024 } }, d3);
    await createAndStart({ name: 't', memory: 16, kernel: 'spin', cpu: { weight: 3072 } }, d3);
    await new Promise((r) => setTimeout(r, 2500)); // speeds measured, first windows past
    const shares: number[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      shares.push((await api(d3, 'GET', '/v1/vms/p/stats')).json.instructionShare);
    }
    const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
    assert.ok(Math.abs(mean - 0.25) < 0.07, `process VM's instruction share ${mean.toFixed(3)} (windows ${shares.map((x) => x.toFixed(3)).join(', ')})`);
  } finally {
    await d3.cleanup();
  }
});

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

// The daemon's REST API contract against a real daemon on a temporary socket:
// every route, every kind of bad input (400 naming the field), unknown VMs
// (404), conflicting actions (409), the bearer token on TCP (401), the
// WebSocket console's refusals, and that nothing half-created is left behind.
// VMs here run tiny guests (a counting loop, or wfi), so no boot is needed.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync, symlinkSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { api, makeImages, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { createVmSchema } from '../src/host/schemas.js';
import { startDaemon } from '../src/host/server.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon({ memoryBudgetMiB: 1024, cpus: 1 });
  writeFileSync(join(d.dir, 'outside'), 'x');
  symlinkSync(join(d.dir, 'outside'), join(d.images, 'link-out'));
  writeFileSync(join(d.images, 'disk.img'), Buffer.alloc(1024 * 1024));
});
after(async () => {
  await d?.cleanup();
});

const ok = { name: 'vm1', memory: 16, kernel: 'idle' };

async function expectError(method: string, path: string, body: unknown, status: number, re: RegExp): Promise<void> {
  const r = await api(d, method, path, body);
  assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)} -> ${r.status} ${r.text}`);
  assert.equal(typeof r.json?.error, 'string', r.text);
  assert.match(r.json.error, re);
}

function wsStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_q, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once('error', reject);
  });
}

describe('create: validation', () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown field', { ...ok, bogus: 1 }, /^bogus: unknown field$/],
    ['unknown nested field', { ...ok, cpu: { weight: 100, shares: 3 } }, /^cpu\.shares: unknown field$/],
    ['unknown disk field', { ...ok, disks: [{ path: 'disk.img', cache: 'none' }] }, /^disks\[0\]\.cache: unknown field$/],
    ['wrong type (string memory)', { ...ok, memory: '128' }, /^memory: must be integer$/],
    ['wrong type (boolean)', { ...ok, deterministic: 'yes' }, /^deterministic: must be boolean$/],
    ['memory too large', { ...ok, memory: 99999 }, /^memory: must be at most 3584 MiB$/],
    ['memory too small', { ...ok, memory: 8 }, /^memory: must be at least 16 MiB$/],
    ['weight out of range', { ...ok, cpu: { weight: 1 } }, /^cpu\.weight: must be at least 2$/],
    ['cap out of range', { ...ok, cpu: { cap: 0.001 } }, /^cpu\.cap: must be at least 0.01$/],
    ['cap beyond the hart count', { ...ok, cpu: { cap: 1.5 } }, /^cpu\.cap: 1\.5 cores is more than the VM's 1 hart can use/],
    ['cap beyond --cpus', { ...ok, cpus: 2, cpu: { cap: 1.5 } }, /^cpu\.cap: must be at most 1/],
    ['vcpus 9', { ...ok, vcpus: 9 }, /^vcpus: must be at most 8/],
    ['cpus 9', { ...ok, cpus: 9 }, /^cpus: must be at most 8/],
    ['cpus and vcpus differ', { ...ok, cpus: 2, vcpus: 4 }, /^vcpus: differs from cpus/],
    ['name with /', { ...ok, name: 'a/b' }, /^name: .*no path separators/],
    ['name ..', { ...ok, name: '..' }, /^name: /],
    ['name too long', { ...ok, name: 'a'.repeat(64) }, /^name: /],
    ['missing name', { memory: 16, kernel: 'idle' }, /^name: is required$/],
    ['missing kernel', { name: 'x', memory: 16 }, /^kernel: is required/],
    ['root disk without a disk', { ...ok, rootDisk: true }, /^rootDisk: needs a disk/],
    ['kernel outside images dir', { ...ok, kernel: '/etc/hostname' }, /^kernel: must be inside the images directory/],
    ['kernel with ..', { ...ok, kernel: '../outside' }, /^kernel: "\.\." is not allowed/],
    ['kernel symlink out of images dir', { ...ok, kernel: 'link-out' }, /^kernel: must be inside the images directory/],
    ['kernel missing', { ...ok, kernel: 'nope' }, /^kernel: file not found/],
    ['disk outside images dir', { ...ok, disks: [{ path: join(d?.dir ?? '/', 'outside') }] }, /^disks\[0\]\.path: must be inside/],
    ['bad nic mode', { ...ok, nics: [{ mode: 'bridge' }] }, /^nics\[0\]\.mode: must be one of user, switch, tap$/],
    ['bad restart policy', { ...ok, restart: { policy: 'sometimes' } }, /^restart\.policy: must be one of/],
    ['debug without --debug-faults', { ...ok, debug: { failAfterMs: 1 } }, /^debug: /],
    ['not an object', [1, 2], /^body: must be object$/],
  ];
  for (const [what, body, re] of cases) {
    test(what, async () => {
      // The disk case needs the temp dir, known only once the daemon runs.
      const b = what === 'disk outside images dir' ? { ...ok, disks: [{ path: join(d.dir, 'outside') }] } : body;
      await expectError('POST', '/v1/vms', b, 400, re);
    });
  }
  test('invalid JSON and empty body', async () => {
    await expectError('POST', '/v1/vms', '{"name": "x",', 400, /^body: invalid JSON/);
    await expectError('POST', '/v1/vms', '', 400, /^body: a JSON object is required/);
  });
  test('nothing half-created after the errors', async () => {
    const list = await api(d, 'GET', '/v1/vms');
    assert.deepEqual(list.json, []);
    assert.deepEqual(readdirSync(join(d.dir, 'state', 'vms')), []);
    assert.equal((await api(d, 'GET', '/v1/host/stats')).json.memoryReservedMiB, 0);
  });
});

describe('routes', () => {
  test('OpenAPI document uses the validation schemas', async () => {
    const r = await api(d, 'GET', '/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.json.openapi, '3.0.3');
    assert.deepEqual(r.json.components.schemas.CreateVm, JSON.parse(JSON.stringify(createVmSchema)));
    for (const p of ['/v1/vms', '/v1/vms/{name}', '/v1/vms/{name}/start', '/v1/vms/{name}/console', '/v1/vms/{name}/log', '/v1/vms/{name}/stats', '/v1/host/stats', '/metrics']) {
      assert.ok(r.json.paths[p], `documents ${p}`);
    }
  });

  test('socket is mode 0600', () => {
    assert.equal(statSync(d.socketPath).mode & 0o777, 0o600);
  });

  test('create, duplicate, budget, list, inspect', async () => {
    const r = await api(d, 'POST', '/v1/vms', { ...ok, cpu: { weight: 512 }, nics: [{ mode: 'user' }], disks: [{ path: 'disk.img', format: 'raw', readonly: true, serial: 'd1' }] });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.state, 'created');
    assert.equal(r.json.config.disks[0].path, join(d.images, 'disk.img'));
    assert.ok(Array.isArray(r.json.notes));
    await expectError('POST', '/v1/vms', ok, 409, /^name: a VM named 'vm1' already exists$/);
    await expectError('POST', '/v1/vms', { ...ok, name: 'big', memory: 1024 }, 409, /^memory: 1024 MiB requested but only 1008 MiB/);
    const list = await api(d, 'GET', '/v1/vms');
    assert.deepEqual(list.json.map((v: { name: string }) => v.name), ['vm1']);
    const one = await api(d, 'GET', '/v1/vms/vm1');
    assert.equal(one.status, 200);
    assert.equal(one.json.config.cpu.weight, 512);
    assert.ok(existsSync(join(d.dir, 'state', 'vms', 'vm1.json')));
  });

  test('unknown VM: 404 on every route', async () => {
    for (const [m, p] of [
      ['GET', '/v1/vms/nope'], ['DELETE', '/v1/vms/nope'], ['PATCH', '/v1/vms/nope'], ['POST', '/v1/vms/nope/start'],
      ['POST', '/v1/vms/nope/pause'], ['POST', '/v1/vms/nope/resume'], ['POST', '/v1/vms/nope/stop'], ['POST', '/v1/vms/nope/kill'],
      ['GET', '/v1/vms/nope/stats'], ['GET', '/v1/vms/nope/log'],
    ]) {
      await expectError(m, p, m === 'PATCH' ? { cpu: { weight: 4 } } : undefined, 404, /^no VM named 'nope'$/);
    }
    await expectError('GET', '/v2/vms', undefined, 404, /no route/);
    await expectError('PUT', '/v1/vms', undefined, 405, /not allowed/);
    await expectError('GET', '/v1/vms/%E0%A4%A', undefined, 400, /invalid percent-encoding/);
    assert.equal(await wsStatus(`ws+unix://${d.socketPath}:/v1/vms/%E0%A4%A/console`), 400);
  });

  test('lifecycle and conflicts', async () => {
    await expectError('POST', '/v1/vms/vm1/pause', undefined, 409, /not running/);
    await expectError('POST', '/v1/vms/vm1/stop', undefined, 409, /not running/);
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/start')).json.state, 'running');
    await expectError('POST', '/v1/vms/vm1/start', undefined, 409, /^VM 'vm1' is already running$/);
    await expectError('POST', '/v1/vms/vm1/resume', undefined, 409, /not paused/);
    await expectError('POST', '/v1/vms/vm1/start', '{"x":1}', 400, /takes no fields/);
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/pause')).json.state, 'paused');
    await expectError('POST', '/v1/vms/vm1/pause', undefined, 409, /paused, not running/);
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/resume', {})).json.state, 'running');
    await expectError('DELETE', '/v1/vms/vm1', undefined, 409, /stop it first or delete with \?force=true/);
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/stop')).json.state, 'stopped');
    await expectError('POST', '/v1/vms/vm1/kill', undefined, 409, /stopped, not running/);
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/start')).json.state, 'running');
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/kill')).json.state, 'stopped');
    assert.equal((await api(d, 'POST', '/v1/vms/vm1/start')).status, 200);
  });

  test('PATCH cpu weight and cap on a running VM', async () => {
    const r = await api(d, 'PATCH', '/v1/vms/vm1', { cpu: { weight: 2048, cap: 0.5 } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.config.cpu, { weight: 2048, cap: 0.5 });
    const s = await api(d, 'GET', '/v1/vms/vm1/stats');
    assert.equal(s.json.weight, 2048);
    assert.equal(s.json.cap, 0.5);
    assert.deepEqual((await api(d, 'PATCH', '/v1/vms/vm1', { cpu: { cap: null } })).json.config.cpu, { weight: 2048 });
    await expectError('PATCH', '/v1/vms/vm1', { cpu: { weight: 2048 }, memory: 32 }, 400, /^memory: unknown field$/);
    await expectError('PATCH', '/v1/vms/vm1', { cpu: { weight: 'heavy' } }, 400, /^cpu\.weight: must be integer$/);
    await expectError('PATCH', '/v1/vms/vm1', { cpu: { cap: 9 } }, 400, /^cpu\.cap: 9 cores is more than the VM's 1 hart can use/);
    await expectError('PATCH', '/v1/vms/vm1', '{', 400, /invalid JSON/);
  });

  test('stats, host stats, metrics, log', async () => {
    await until('instructions counted', async () => (await api(d, 'GET', '/v1/vms/vm1/stats')).json.instructions > 0, 10_000);
    const s = (await api(d, 'GET', '/v1/vms/vm1/stats')).json;
    for (const k of ['state', 'uptimeSeconds', 'instructions', 'mips', 'busyUs', 'cpuShare', 'instructionShare', 'translatedShare', 'memoryReservedMiB', 'restarts', 'lastFailure', 'devices']) {
      assert.ok(k in s, `stats has ${k}`);
    }
    assert.equal(s.memoryReservedMiB, 16);
    const h = (await api(d, 'GET', '/v1/host/stats')).json;
    assert.equal(h.vms, 1);
    assert.equal(h.memoryBudgetMiB, 1024);
    assert.equal(h.byState.running, 1);
    const m = await api(d, 'GET', '/metrics');
    assert.equal(m.status, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain/);
    assert.match(m.text, /tsvisor_vm_state\{vm="vm1",state="running"\} 1/);
    assert.match(m.text, /tsvisor_vm_guest_instructions_total\{vm="vm1"\} \d+/);
    assert.match(m.text, /tsvisor_host_memory_reserved_bytes 16777216/);
    const log = await api(d, 'GET', '/v1/vms/vm1/log');
    assert.equal(log.status, 200);
    assert.equal(log.headers['content-type'], 'application/octet-stream');
  });

  test('console WebSocket refusals', async () => {
    const base = `ws+unix://${d.socketPath}:`;
    assert.equal(await wsStatus(`${base}/v1/vms/nope/console`), 404);
    assert.equal(await wsStatus(`${base}/v1/vms/vm1/console`), 101);
    await expectError('GET', '/v1/vms/vm1/console', undefined, 400, /needs a WebSocket upgrade/);
    await api(d, 'POST', '/v1/vms/vm1/stop');
    assert.equal(await wsStatus(`${base}/v1/vms/vm1/console`), 409);
  });

  test('delete releases the name and the memory', async () => {
    await api(d, 'POST', '/v1/vms/vm1/start');
    const r = await api(d, 'DELETE', '/v1/vms/vm1?force=true');
    assert.equal(r.status, 204);
    await expectError('GET', '/v1/vms/vm1', undefined, 404, /no VM/);
    assert.equal((await api(d, 'GET', '/v1/host/stats')).json.memoryReservedMiB, 0);
    assert.deepEqual(readdirSync(join(d.dir, 'state', 'vms')), []);
    assert.equal((await api(d, 'POST', '/v1/vms', { ...ok, memory: 1024 })).status, 201, 'the whole budget is free again');
    assert.equal((await api(d, 'DELETE', '/v1/vms/vm1')).status, 204);
  });

  test('API latency (diagnostic)', async (t) => {
    await api(d, 'POST', '/v1/vms', ok);
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      assert.equal((await api(d, 'GET', '/v1/vms/vm1/stats')).status, 200);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    t.diagnostic(`GET stats over the Unix socket: median ${times[100].toFixed(2)} ms, p99 ${times[198].toFixed(2)} ms`);
    await api(d, 'DELETE', '/v1/vms/vm1');
  });
});

describe('TCP with a bearer token', () => {
  test('401 without or with a wrong token; 200 with it', async () => {
    const { dir, images } = await makeImages(false);
    const token = 'a-test-token-0123456789';
    const t = await startDaemon({
      socketPath: join(dir, 't.sock'), stateDir: join(dir, 'state'), imagesDir: images, cpus: 1, memoryBudgetMiB: 512,
      wasmPath: defaultWasmPath(), debugFaults: false, hangTimeoutMs: 30_000, schedulerPeriodMs: 50, logMaxBytes: 1 << 20,
      workerMaxHeapMiB: 256, version: 'test', log: () => {}, listen: { host: '127.0.0.1', port: 0 }, token,
    });
    try {
      const port = t.tcp!.port;
      const none = await api({ port }, 'GET', '/v1/vms');
      assert.equal(none.status, 401);
      assert.match(none.json.error, /bearer token/);
      assert.equal((await api({ port, token: 'wrong' }, 'GET', '/v1/vms')).status, 401);
      assert.equal((await api({ port, token: `${token}x` }, 'GET', '/v1/vms')).status, 401);
      assert.equal((await api({ port }, 'GET', '/metrics')).status, 401);
      assert.equal((await api({ port, token }, 'GET', '/v1/vms')).status, 200);
      assert.equal((await api({ port, token }, 'POST', '/v1/vms', { ...ok, name: 'tcp1' })).status, 201);
      assert.equal(await wsStatus(`ws://127.0.0.1:${port}/v1/vms/tcp1/console`), 401);
    } finally {
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await assert.rejects(
      startDaemon({ socketPath: join(dir, 'x.sock'), listen: { host: '127.0.0.1', port: 0 } } as never),
      /--listen needs --token-file/,
    );
  });
});

describe('CLI: serve and client commands; definitions survive a restart', () => {
  test('serve, create, ls, stop the daemon, serve again', { timeout: budget(60_000) }, async () => {
    const { dir, images } = await makeImages(false);
    const sock = join(dir, 'cli.sock');
    const serveArgs = [CLI, 'serve', '--socket', sock, '--state-dir', join(dir, 'state'), '--images-dir', images, '--memory-budget', '1G', '--cpus', '1'];
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args, '--socket', sock], { encoding: 'utf8' });
    try {
      const down = cli('ls');
      assert.equal(down.status, 1);
      assert.match(down.stderr, /^tsvisor: cannot reach the daemon at .*cli\.sock/);
      const noToken = spawnSync(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0'], { encoding: 'utf8' });
      assert.equal(noToken.status, 2);
      assert.match(noToken.stderr, /--listen needs --token-file/);

      for (let round = 0; round < 2; round++) {
        const daemon = spawn(process.execPath, serveArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        daemon.stderr!.on('data', (b: Buffer) => (err += b.toString()));
        await until('daemon up', () => err.includes('listening on'), 20_000);
        if (round === 0) {
          const c = cli('create', 'keep', '--kernel', 'idle', '--mem', '16M', '--cpu-weight', '300', '--cpu-cap', '0.5', '--restart', 'on-failure:2');
          assert.equal(c.status, 0, c.stderr);
          assert.equal(cli('start', 'keep').stdout, 'keep: running\n');
          const bad = cli('create', 'bad/name', '--kernel', 'idle', '--mem', '16M');
          assert.equal(bad.status, 1);
          assert.match(bad.stderr, /^tsvisor: name: .* \(HTTP 400\)\n$/);
          const dup = cli('start', 'keep');
          assert.match(dup.stderr, /^tsvisor: VM 'keep' is already running \(HTTP 409\)/);
        } else {
          assert.match(err, /1 VM\(s\) defined/);
        }
        const ls = cli('ls');
        assert.equal(ls.status, 0, ls.stderr);
        assert.match(ls.stdout, round === 0 ? /keep\s+running\s+16M\s+300\s+0.5/ : /keep\s+stopped\s+16M\s+300\s+0.5/);
        const inspect = JSON.parse(cli('inspect', 'keep').stdout);
        assert.deepEqual(inspect.config.restart, { policy: 'on-failure', maxRetries: 2 });
        daemon.kill('SIGTERM');
        const code = await new Promise((r) => daemon.on('exit', r));
        assert.equal(code, 0);
        assert.equal(existsSync(sock), false, 'socket removed at shutdown');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('NICs', () => {
  test('user and switch NICs attach at start; counters in stats; a busy hostfwd port is a 409; bad specs are 400', async () => {
    await expectError('POST', '/v1/vms', { ...ok, name: 'badnet', nics: [{ mode: 'user', hostfwd: ['tcp:x-:80'] }] }, 400, /^nics\[0\]: bad hostfwd/);
    await expectError('POST', '/v1/vms', { ...ok, name: 'badnet', nics: [{ mode: 'switch' }] }, 400, /^nics\[0\]\.switch: /);
    await expectError('POST', '/v1/vms', { ...ok, name: 'badnet', nics: [{ mode: 'user', mac: '01:00:00:00:00:01' }] }, 400, /^nics\[0\]: bad mac/);
    const blocker = (await import('node:net')).createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busy = (blocker.address() as { port: number }).port;
    const nics = [{ mode: 'user', hostfwd: [`tcp:127.0.0.1:0-:80`], allow: ['127.0.0.1/8'] }, { mode: 'switch', switch: 'lan1', mac: '52:54:00:aa:bb:cc' }];
    assert.equal((await api(d, 'POST', '/v1/vms', { ...ok, name: 'net1', nics })).status, 201);
    assert.equal((await api(d, 'POST', '/v1/vms/net1/start')).status, 200);
    const s = (await api(d, 'GET', '/v1/vms/net1/stats')).json;
    assert.equal(s.devices.nics.length, 2);
    assert.equal(s.devices.nics[1].mac, '52:54:00:aa:bb:cc');
    assert.match(s.devices.nics[0].backend, /^user /);
    assert.equal((await api(d, 'POST', '/v1/vms', { ...ok, name: 'net2', nics: [{ mode: 'user', hostfwd: [`tcp:127.0.0.1:${busy}-:80`] }] })).status, 201);
    await expectError('POST', '/v1/vms/net2/start', undefined, 409, /address already in use/);
    assert.equal((await api(d, 'GET', '/v1/vms/net2')).json.state, 'created', 'a VM whose NIC failed is not half-started');
    blocker.close();
    for (const n of ['net1', 'net2']) assert.equal((await api(d, 'DELETE', `/v1/vms/${n}?force=true`)).status, 204);
  });
});

describe('I/O limits and balloon', () => {
  test('limits at creation, changed on a running VM; balloon target; disk counters in stats', async () => {
    const body = {
      ...ok, name: 'lim1', balloon: true,
      disks: [{ path: 'disk.img', limits: { bps: 1048576 } }],
      nics: [{ mode: 'switch', switch: 'limlan', limits: { txBps: 1000000 } }],
    };
    await expectError('POST', '/v1/vms', { ...body, disks: [{ path: 'disk.img', limits: { bps: 0 } }] }, 400, /^disks\[0\]\.limits\.bps: must be at least 1$/);
    await expectError('POST', '/v1/vms', { ...body, nics: [{ mode: 'user', limits: { up: 1 } }] }, 400, /^nics\[0\]\.limits\.up: unknown field$/);
    assert.equal((await api(d, 'POST', '/v1/vms', body)).status, 201);
    await expectError('PATCH', '/v1/vms/lim1', { balloon: { targetMiB: 4 } }, 409, /not running/);
    assert.equal((await api(d, 'POST', '/v1/vms/lim1/start')).status, 200);
    // The worker reports its devices once it has made them: wait for that, not a fixed time.
    await until('lim1 reports its disk in stats', async () => ((await api(d, 'GET', '/v1/vms/lim1/stats')).json.devices?.disks?.length ?? 0) > 0, 60_000, 50);
    const s0 = (await api(d, 'GET', '/v1/vms/lim1/stats')).json;
    assert.deepEqual(s0.devices.disks[0].limits.bandwidth, { size: 1048576, refillMs: 1000 });
    const r = await api(d, 'PATCH', '/v1/vms/lim1', { disks: [{ index: 0, limits: { iops: 100 } }], nics: [{ index: 0, limits: { rxPps: 10 } }], balloon: { targetMiB: 4 } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.config.disks[0].limits, { iops: 100 });
    assert.deepEqual(r.json.config.nics[0].limits, { rxPps: 10 });
    const s1 = (await api(d, 'GET', '/v1/vms/lim1/stats')).json;
    assert.deepEqual(s1.devices.disks[0].limits.ops, { size: 100, refillMs: 1000 });
    assert.equal(s1.devices.disks[0].limits.bandwidth ?? null, null, 'the new limits replace the old ones');
    assert.ok(s1.devices.balloon, 'balloon stats present');
    const m = (await api(d, 'GET', '/metrics')).text;
    assert.match(m, /tsvisor_vm_disk_read_bytes_total\{vm="lim1",disk="vda"\} 0/);
    assert.match(m, /tsvisor_vm_nic_tx_frames_total\{vm="lim1",nic="eth0"\} \d+/);
    await expectError('PATCH', '/v1/vms/lim1', { disks: [{ index: 3, limits: {} }] }, 400, /^disks\[0\]\.index: the VM has no disk 3/);
    await expectError('PATCH', '/v1/vms/lim1', { balloon: { targetMiB: 16 } }, 400, /^balloon\.targetMiB: must be less than/);
    await expectError('PATCH', '/v1/vms/lim1', {}, 400, /must NOT have fewer than 1 properties|at least/);
    assert.equal((await api(d, 'DELETE', '/v1/vms/lim1?force=true')).status, 204);
  });
});

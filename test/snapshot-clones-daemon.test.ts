// Clones through a real daemon: a default guest with a raw disk and a user NIC
// is snapshotted (PUT /v1/vms/NAME/snapshot), then POST /v1/snapshots/NAME/clones
// defines and starts clones of it. Each answers on its console with a MAC of its
// own (after its driver probes again) and random bytes of its own, and writes
// its disk into its overlay in the state directory: the snapshot's disk stays
// zero. Bad requests, a budget too small for all of them, listing, deleting a
// snapshot in use and the client commands are checked too.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { defaultMac, formatMac } from '../src/net/mac.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const BUDGET = 640;

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon({ memoryBudgetMiB: BUDGET, cpus: 1, withGuest: true, hangTimeoutMs: 120_000 });
});
after(async () => {
  await d?.cleanup();
});

function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, ...args, '--socket', d.socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
}

/** Run a command on a daemon VM's console; returns what it printed after the marker. */
async function run(c: ConsoleClient, cmd: string, marker: string): Promise<string> {
  const from = c.output.length;
  c.send(`${cmd}\n`);
  try {
    await c.waitFor(new RegExp(`${marker}[^\\n]*\\n`), 600_000, from);
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\nconsole:\n${c.output.slice(-3000)}`);
  }
  const text = c.output.slice(from);
  return text.slice(text.search(new RegExp(marker)));
}

test('POST /v1/snapshots/NAME/clones: clones with their own MACs, randomness and disk overlays', { timeout: budget(40 * 60 * 1000) }, async () => {
  const img = join(d.images, 'data.img');
  writeFileSync(img, '');
  truncateSync(img, 8 * 1024 * 1024);
  const orig = { name: 'orig', memory: 128, kernel: 'vmlinux', initrd: 'initrd', disks: [{ path: 'data.img', format: 'raw' }], nics: [{ mode: 'user' }] };
  assert.equal((await api(d, 'POST', '/v1/vms', orig)).status, 201);
  assert.equal((await api(d, 'POST', '/v1/vms/orig/start')).status, 200);
  const oc = await ConsoleClient.open(d.socketPath, 'orig');
  await oc.waitFor(/tsvisor guest ready[\s\S]*# /, 600_000); // input typed before the shell runs is lost
  const r = await api(d, 'PUT', '/v1/vms/orig/snapshot', { dir: 'base' });
  assert.equal(r.status, 200, r.text);
  oc.close();
  assert.equal((await api(d, 'POST', '/v1/vms/orig/kill')).status, 200);

  const bad = async (path: string, body: unknown, status: number, re: RegExp) => {
    const x = await api(d, 'POST', path, body);
    assert.equal(x.status, status, `${path} ${JSON.stringify(body)} -> ${x.status} ${x.text}`);
    assert.match(x.json?.error ?? '', re);
  };
  await bad('/v1/snapshots/nope/clones', { count: 1 }, 404, /no snapshot named 'nope'/);
  await bad('/v1/snapshots/base/clones', { count: 0 }, 400, /^count: /);
  await bad('/v1/snapshots/base/clones', { count: 1, extra: true }, 400, /extra: unknown field/);
  await bad('/v1/snapshots/base/clones', { count: 1, prefix: '../x' }, 400, /^prefix: /);
  await bad('/v1/snapshots/base/clones', { count: 1, nics: [{ mode: 'user', mac: '52:54:00:00:00:01' }] }, 400, /nics\[0\]\.mac: /);
  // orig keeps 128 MiB of the 640: five clones of 128 MiB do not fit.
  const before = (await api(d, 'GET', '/v1/vms')).json.map((v: { name: string }) => v.name);
  await bad('/v1/snapshots/base/clones', { count: 5, prefix: 'big' }, 409, /^memory: 5 clones of 128 MiB need 640 MiB but only 512 MiB/);
  assert.deepEqual((await api(d, 'GET', '/v1/vms')).json.map((v: { name: string }) => v.name), before, 'a refused request defines nothing');

  const made = await api(d, 'POST', '/v1/snapshots/base/clones', { count: 2, prefix: 'c' });
  assert.equal(made.status, 201, made.text);
  assert.deepEqual(made.json.vms.map((v: { name: string; state: string }) => [v.name, v.state]), [['c-1', 'running'], ['c-2', 'running']]);
  assert.equal(made.json.vms[0].config.clone, true);
  await bad('/v1/snapshots/base/clones', { count: 1, prefix: 'c' }, 409, /^prefix: c-1 already exist/);
  const seen: { mac: string; random: string }[] = [];
  for (const name of ['c-1', 'c-2']) {
    assert.ok(existsSync(join(d.dir, 'state', 'clones', name, 'disk0.qcow2')), `${name}: its overlay`);
    const c = await ConsoleClient.open(d.socketPath, name);
    // The driver probes again (unbind, bind) and so reads the clone's MAC.
    const out = await run(
      c,
      'd=$(basename $(readlink /sys/class/net/eth0/device)); echo $d > /sys/bus/virtio/drivers/virtio_net/unbind; echo $d > /sys/bus/virtio/drivers/virtio_net/bind; ' +
        `echo ${name} | dd of=/dev/vda conv=fsync 2>/dev/null; echo M$((1+1))M $(cat /sys/class/net/eth0/address) $(head -c 16 /dev/urandom | od -An -x | tr -d " ")`,
      'M2M',
    );
    c.close();
    const m = /M2M ([0-9a-f:]{17}) ([0-9a-f]{32})/.exec(out);
    assert.ok(m, `${name}: MAC and random bytes\n${out}`);
    assert.equal(m[1], formatMac(defaultMac(name, 0)), `${name}: the guest sees its own MAC`);
    seen.push({ mac: m[1]!, random: m[2]! });
  }
  assert.notEqual(seen[0]!.mac, seen[1]!.mac);
  assert.notEqual(seen[0]!.random, seen[1]!.random, 'the clones print different /dev/urandom bytes');
  assert.ok(readFileSync(img).every((b) => b === 0), "the clones' writes stay in their overlays");

  // Listing, and a snapshot in use cannot be deleted.
  const list = await api(d, 'GET', '/v1/snapshots');
  assert.equal(list.status, 200);
  const base = list.json.find((s: { name: string }) => s.name === 'base');
  assert.deepEqual(base.usedBy, ['c-1', 'c-2']);
  assert.equal(base.memory, 128);
  assert.deepEqual(base.disks, [img]);
  const ls = await cli(['snapshots']);
  assert.equal(ls.code, 0, ls.err);
  assert.match(ls.out, /^base\s+\S+\s+128M\s+c-1,c-2$/m);
  const del = await api(d, 'DELETE', '/v1/snapshots/base');
  assert.equal(del.status, 409);
  assert.match(del.json.error, /used by c-1, c-2/);

  // The client: clones defined without starting them.
  const cl = await cli(['clone', '--daemon', 'base', '--count', '1', '--prefix', 'cli', '--no-start']);
  assert.equal(cl.code, 0, cl.err);
  assert.equal(cl.out, 'cli-1: created\n');

  for (const name of ['c-1', 'c-2', 'cli-1']) assert.equal((await api(d, 'DELETE', `/v1/vms/${name}?force=true`)).status, 204);
  assert.ok(!existsSync(join(d.dir, 'state', 'clones', 'c-1')), 'deleting a clone removes its overlays');
  const rm = await cli(['rm-snapshot', 'base']);
  assert.equal(rm.code, 0, rm.err);
  assert.equal((await api(d, 'GET', '/v1/snapshots/base')).status, 404);
  assert.equal((await api(d, 'DELETE', '/v1/snapshots/base')).status, 404);
  assert.ok(existsSync(img), "the snapshot's disk image stays");
});

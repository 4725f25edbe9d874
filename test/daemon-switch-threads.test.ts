// Switch NICs of the daemon's thread VMs, whose backends run on one I/O thread
// per VM: the switch is hosted by the first VM's thread on its Unix socket and
// the others join it there. Frames sent into the switch reach every VM; when
// the hosting VM stops, the other takes the switch over and frames reach it
// again.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

let d: TestDaemon;
let runtime: string;
const SWITCH = 'lan0';

before(async () => {
  // VM threads read it when they join the switch.
  runtime = mkdtempSync(join(tmpdir(), 'tsvisor-run-'));
  process.env.TSVISOR_RUNTIME_DIR = runtime;
  d = await startTestDaemon();
});
after(async () => {
  await d?.cleanup();
  delete process.env.TSVISOR_RUNTIME_DIR;
  rmSync(runtime, { recursive: true, force: true });
});

function broadcast(): Buffer {
  const f = Buffer.alloc(2 + 60);
  f.writeUInt16BE(60, 0);
  f.fill(0xff, 2, 8);
  Buffer.from([0x02, 0, 0, 0xee, 0, 1]).copy(f, 8);
  f.writeUInt16BE(0x88b5, 14);
  return f;
}

async function join_(): Promise<Socket> {
  const path = join(runtime, `switch-${SWITCH}.sock`);
  await until('the switch socket', () => existsSync(path), 30_000);
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function framesToGuest(name: string): Promise<number> {
  const s = (await api(d, 'GET', `/v1/vms/${name}/stats`)).json;
  return s.devices.nics[0]?.host.txToGuestFrames ?? -1;
}

test('two thread VMs on one switch get its frames; the second takes the switch over when the first stops', { timeout: budget(120_000) }, async () => {
  for (const name of ['a', 'b']) {
    assert.equal((await api(d, 'POST', '/v1/vms', { name, memory: 16, kernel: 'idle', nics: [{ mode: 'switch', switch: SWITCH }] })).status, 201);
    assert.equal((await api(d, 'POST', `/v1/vms/${name}/start`)).status, 200);
  }
  // Both NIC threads have joined (one hosts, one connected) once a frame reaches both.
  let sock = await join_();
  await until('a frame through the switch to both VMs', async () => {
    sock.write(broadcast());
    return (await framesToGuest('a')) > 0 && (await framesToGuest('b')) > 0;
  }, 30_000, 200);

  // Stop whichever VM hosts the switch: the first started, unless the two raced.
  assert.equal((await api(d, 'POST', '/v1/vms/a/stop')).status, 200);
  const before = await framesToGuest('b');
  sock.destroy();
  // The remaining VM's thread takes the switch over (within about half a second); join it again.
  await until('frames reach b again after a stopped', async () => {
    if (sock.destroyed) sock = await join_().catch(() => sock);
    if (!sock.destroyed) sock.write(broadcast());
    return (await framesToGuest('b')) > before;
  }, 30_000, 200);
  sock.destroy();
});

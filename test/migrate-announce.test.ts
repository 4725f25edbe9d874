// After a live migration the guest announces itself where it now runs: the
// destination sets VIRTIO_NET_S_ANNOUNCE with a config interrupt, and the real
// Debian kernel's virtio-net driver (VIRTIO_NET_F_GUEST_ANNOUNCE) sends a
// gratuitous ARP for its address and acknowledges on the control queue. The
// test hosts the switch the VM's NIC is on and watches its frames: a link
// blip alone makes this kernel send no gratuitous ARP (dhcp is off).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { SharedSwitchBackend, switchSocketPath } from '../src/net/switch-hub.js';
import { budget } from './lib/budget.js';

const SWITCH = 'annlan';
const MAC = [0x52, 0x54, 0x00, 0x77, 0x00, 0x05];
const GUEST_IP = [10, 0, 77, 5];
const TOKEN_A = 'token-a-announce-0123';
const TOKEN_B = 'token-b-announce-0123';
let a: TestDaemon;
let b: TestDaemon;
let runtime: string;
let observer: SharedSwitchBackend;
const frames: Uint8Array[] = [];

before(async () => {
  runtime = mkdtempSync(join(tmpdir(), 'tsvisor-run-'));
  process.env.TSVISOR_RUNTIME_DIR = runtime;
  // The test hosts the switch (first to use the name), so it sees every broadcast whichever daemon runs the VM.
  observer = new SharedSwitchBackend(SWITCH, 'observer');
  observer.start((f) => frames.push(f.slice()));
  await until('the test to host the switch', () => existsSync(switchSocketPath(SWITCH)), 30_000);
  a = await startTestDaemon({ withGuest: true, memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: TOKEN_A });
  b = await startTestDaemon({ memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: TOKEN_B, imagesDir: a.images });
});
after(async () => {
  await b?.cleanup();
  await a?.cleanup();
  await observer?.close();
  delete process.env.TSVISOR_RUNTIME_DIR;
  rmSync(runtime, { recursive: true, force: true });
});

/** An ARP frame from the guest's MAC whose sender and target address are both the guest's: a gratuitous ARP. */
function isGratuitousArp(f: Uint8Array): boolean {
  if (f.length < 42 || f[12] !== 0x08 || f[13] !== 0x06) return false;
  const same = (o: number, want: number[]) => want.every((x, i) => f[o + i] === x);
  return same(6, MAC) && same(22, MAC) && same(28, GUEST_IP) && same(38, GUEST_IP);
}

test('after a live migration the guest sends a gratuitous ARP on its switch (VIRTIO_NET_F_GUEST_ANNOUNCE)', { timeout: budget(2_400_000) }, async (t) => {
  const mac = MAC.map((x) => x.toString(16).padStart(2, '0')).join(':');
  const made = await api(a, 'POST', '/v1/vms', {
    name: 'ann', memory: 256, kernel: 'vmlinux', initrd: 'initrd', append: 'console=ttyS0 tsvisor.dhcp=off',
    nics: [{ mode: 'switch', switch: SWITCH, mac }],
  });
  assert.equal(made.status, 201, made.text);
  assert.equal((await api(a, 'POST', '/v1/vms/ann/start')).status, 200);
  const con = await ConsoleClient.open(a.socketPath, 'ann');
  try {
    await con.waitFor(READY_LINE, 1_200_000);
    // Typed before the shell's prompt, input is lost (ash's terminal query at start-up takes it).
    await con.waitFor(/# (\x1b\[6n)?$/, 600_000, con.output.indexOf(READY_LINE));
    say(t, 'the guest is up');
    const from = con.output.length;
    con.send(`ip addr add ${GUEST_IP.join('.')}/24 dev eth0 && ip link set eth0 up && echo NET-$((40+2))-UP\n`);
    await con.waitFor('NET-42-UP', 120_000, from);
  } finally {
    con.close();
  }
  say(t, 'eth0 has its address');
  // Up to here the guest may have said anything; from here only the announcement sends a gratuitous ARP.
  frames.length = 0;
  const r = await api(a, 'POST', '/v1/vms/ann/migrate', { to: `http://127.0.0.1:${b.tcp!.port}`, token: TOKEN_B });
  assert.equal(r.status, 202, r.text);
  let st: { phase?: string } | undefined;
  await until('the migration to end', async () => {
    st = (await api(a, 'GET', '/v1/vms/ann/migrate')).json as { phase?: string };
    return ['completed', 'failed', 'cancelled'].includes(st?.phase ?? '');
  }, 600_000, 200);
  assert.equal(st?.phase, 'completed', JSON.stringify(st));
  say(t, `migrated: ${JSON.stringify(st)}`);
  await until('a gratuitous ARP from the guest at its new place', () => frames.some(isGratuitousArp), 300_000, 100);
  assert.equal((await api(b, 'GET', '/v1/vms/ann')).json?.state, 'running');
  assert.equal((await api(b, 'DELETE', '/v1/vms/ann?force=true')).status, 204);
});

/** A step reached, in the test's report and at once on stderr (these tests take many minutes on a loaded host). */
function say(t: { diagnostic(m: string): void }, m: string): void {
  t.diagnostic(m);
  process.stderr.write(`${new Date().toISOString()} ${m}\n`);
}

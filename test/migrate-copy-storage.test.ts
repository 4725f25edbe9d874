// Live migration with --copy-storage between two daemons that share no
// storage (each its own images and state directory), with the default guest
// writing to its disk the whole time: the destination gets an image of its
// own holding every block the guest wrote before, during and after the move
// and the data it had from the start; a destination that already has an image
// of that name refuses, and the VM goes on at the source with nothing left at
// the destination.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const TOKEN_A = 'token-a-copystorage-01';
const TOKEN_B = 'token-b-copystorage-01';
const MiB = 1024 * 1024;
const DISK = 'data.raw';
/** The guest writes record i at (i % SLOTS) * 64 KiB; the upper half of the disk holds data from the start. */
const SLOTS = 256;
let a: TestDaemon;
let b: TestDaemon;
let original: Uint8Array;

before(async () => {
  a = await startTestDaemon({ withGuest: true, memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: TOKEN_A });
  // Its own images directory: the kernel and initrd are there too (a later reboot boots them), the disk is not.
  b = await startTestDaemon({ withGuest: true, memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: TOKEN_B });
  original = new Uint8Array(64 * MiB);
  randomFillSync(original, 32 * MiB);
  writeFileSync(join(a.images, DISK), original);
});
after(async () => {
  await b?.cleanup();
  await a?.cleanup();
});

async function migrate(extra: Record<string, unknown> = {}) {
  const r = await api(a, 'POST', '/v1/vms/cs/migrate', { to: `http://127.0.0.1:${b.tcp!.port}`, token: TOKEN_B, copyStorage: true, ...extra });
  assert.equal(r.status, 202, r.text);
  let st: Record<string, unknown> = {};
  await until('the migration to end', async () => {
    st = (await api(a, 'GET', '/v1/vms/cs/migrate')).json as Record<string, unknown>;
    return ['completed', 'failed', 'cancelled'].includes(String(st.phase));
  }, 900_000, 200);
  return st;
}

test('--copy-storage: the disk moves with the VM while the guest writes to it; every write is in the destination\'s own image', { timeout: budget(2_400_000) }, async (t) => {
  const made = await api(a, 'POST', '/v1/vms', {
    name: 'cs', memory: 256, kernel: 'vmlinux', initrd: 'initrd', append: 'console=ttyS0', disks: [{ path: DISK, format: 'raw' }],
  });
  assert.equal(made.status, 201, made.text);
  assert.equal((await api(a, 'POST', '/v1/vms/cs/start')).status, 200);
  const con = await ConsoleClient.open(a.socketPath, 'cs');
  let lastSeen = 0;
  try {
    await con.waitFor(READY_LINE, 1_200_000);
    // Typed before the shell's prompt, input is lost (ash's terminal query at start-up takes it).
    await con.waitFor(/# (\x1b\[6n)?$/, 600_000, con.output.indexOf(READY_LINE));
    say(t, 'the guest is up');
    // Record i (8 digits and a newline) at slot i % SLOTS, each write synced; every tenth is reported.
    con.send(`touch /tmp/go; (i=0; while [ -e /tmp/go ]; do i=$((i+1)); printf '%08d\\n' $i | dd of=/dev/vda bs=512 seek=$(( (i % ${SLOTS}) * 128 )) conv=notrunc,fsync 2>/dev/null; echo $i > /tmp/last; [ $((i % 10)) = 0 ] && echo W$i; done) &\n`);
    await con.waitFor(/W20\b/, 600_000);
    lastSeen = Math.max(...[...con.output.matchAll(/W(\d+)/g)].map((m) => Number(m[1])));
  } finally {
    con.close();
  }

  // A destination that already has an image of that name refuses; the source goes on, the file there is untouched.
  writeFileSync(join(b.images, DISK), 'not yours');
  const refused = await migrate();
  assert.equal(refused.phase, 'failed', JSON.stringify(refused));
  assert.match(String(refused.error), /already exists on the destination/);
  assert.equal(readFileSync(join(b.images, DISK), 'utf8'), 'not yours');
  assert.equal((await api(b, 'GET', '/v1/vms')).json.length, 0);
  assert.equal((await api(a, 'GET', '/v1/vms/cs')).json?.state, 'running');
  rmSync(join(b.images, DISK));

  say(t, 'refused as it should; now the real move');
  const st = await migrate();
  assert.equal(st.phase, 'completed', JSON.stringify(st));
  say(t, `migrated: ${JSON.stringify(st)}`);
  assert.ok((st.blocksSent as number) >= (64 * MiB) / (64 * 1024), `every block went at least once: ${JSON.stringify(st)}`);
  assert.ok(existsSync(join(b.images, DISK)), 'the destination has its own image');
  assert.equal((await api(a, 'GET', '/v1/vms/cs')).status, 404);

  // The guest writes on at the destination; then it stops writing and reports its last record.
  const dst = await ConsoleClient.open(b.socketPath, 'cs');
  let last = 0;
  try {
    await until('the guest to write on at the destination', () => [...dst.output.matchAll(/W(\d+)/g)].some((m) => Number(m[1]) > lastSeen + 10), 600_000, 200);
    const from = dst.output.length;
    dst.send('rm /tmp/go; sleep 2; sync; echo LAST=$(cat /tmp/last)=\n');
    await dst.waitFor(/LAST=\d+=/, 300_000, from);
    last = Number(/LAST=(\d+)=/.exec(dst.output.slice(from))![1]);
  } finally {
    dst.close();
  }
  assert.ok(last > lastSeen);
  assert.equal((await api(b, 'POST', '/v1/vms/cs/stop')).status, 200);
  await until('the VM to stop at the destination', async () => (await api(b, 'GET', '/v1/vms/cs')).json?.state === 'stopped', 300_000, 200);

  const disk = readFileSync(join(b.images, DISK));
  assert.equal(disk.length, original.length);
  for (let slot = 0; slot < SLOTS; slot++) {
    // The newest record for this slot: the largest i <= last with i % SLOTS == slot.
    let i = last - ((((last - slot) % SLOTS) + SLOTS) % SLOTS);
    if (i === 0) i = -1;
    const at = slot * 64 * 1024;
    const want = i > 0 ? `${String(i).padStart(8, '0')}\n` : '\0'.repeat(9);
    assert.equal(disk.subarray(at, at + 9).toString('latin1'), want, `slot ${slot}`);
  }
  assert.ok(Buffer.compare(disk.subarray(32 * MiB), Buffer.from(original.subarray(32 * MiB))) === 0, 'the data the disk had from the start');
  assert.equal((await api(b, 'DELETE', '/v1/vms/cs')).status, 204);
});

/** A step reached, in the test's report and at once on stderr (these tests take many minutes on a loaded host). */
function say(t: { diagnostic(m: string): void }, m: string): void {
  t.diagnostic(m);
  process.stderr.write(`${new Date().toISOString()} ${m}\n`);
}

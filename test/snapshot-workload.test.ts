// A snapshot in the middle of a workload (default guest, real kernel and
// busybox): a shell loop keeps updating an 8 MiB buffer in guest RAM (a file
// in the initramfs' RAM file system), prints its MD5 after every step, and
// writes and fsyncs one record per step on a raw disk made by qemu-img before
// printing. The VM is paused, snapshotted and stopped at some step; a
// `tsvisor run --restore` process finishes the workload. Every checksum
// printed, before and after, equals the one the host computes for that step,
// every step is printed, and the disk holds every record.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootDefaultGuest, ChildConsole } from './lib/vm-console.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const STEPS = 30;
const BUF = 8 * 1024 * 1024;
const STRIDE = 524309;
const SPAN = BUF - 8;
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-snap-workload-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** The buffer's MD5 after each step, as the guest's loop makes it. */
function expectedSums(): string[] {
  const buf = Buffer.alloc(BUF);
  const out = [''];
  for (let i = 1; i <= STEPS; i++) {
    buf.write(String(i).padStart(8, '0'), (i * STRIDE) % SPAN, 'latin1');
    out.push(createHash('md5').update(buf).digest('hex'));
  }
  return out;
}

/** STEP lines of a console output: step number to checksum (a step printed twice must agree). */
function steps(text: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const x of text.matchAll(/STEP (\d+) ([0-9a-f]{32})/g)) {
    const i = Number(x[1]);
    assert.ok(!m.has(i) || m.get(i) === x[2], `step ${i} printed twice with different sums`);
    m.set(i, x[2]!);
  }
  return m;
}

test('a workload snapshotted mid-way finishes in the restored VM with the right checksums and every fsynced write', { timeout: budget(40 * 60 * 1000) }, async () => {
  const img = join(dir, 'records.img');
  const made = spawnSync('qemu-img', ['create', '-q', '-f', 'raw', img, '1M'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const a = await bootDefaultGuest({ disks: [{ path: img, format: 'raw' }] }, {}, 600_000);
  const loop =
    `dd if=/dev/zero of=/buf bs=1M count=8 2>/dev/null; i=0; while [ $i -lt ${STEPS} ]; do i=$((i+1)); ` +
    `printf %08d $i | dd of=/buf bs=1 seek=$(( (i*${STRIDE}) % ${SPAN} )) conv=notrunc 2>/dev/null; ` +
    `echo "rec $i" | dd of=/dev/vda bs=512 seek=$i conv=fsync 2>/dev/null; ` +
    'echo "STEP $i $(md5sum < /buf | cut -c1-32)"; done; echo WORK$((1+1))DONE';
  const from = a.type(loop);
  await a.waitFor(/STEP 8 /, 600_000, from);
  a.vm.pause();
  const snap = join(dir, 'snap');
  const r = await a.vm.snapshot(snap);
  assert.ok(r.dataPages > 2048, 'the snapshot holds the buffer');
  await a.vm.stop();
  const before = steps(a.out.slice(from));
  assert.ok(before.size >= 8 && before.size < STEPS, `the snapshot was taken mid-way (${before.size} steps done)`);

  const child = spawn(process.execPath, [CLI, 'run', '--restore', snap], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.stdin!.on('error', () => {});
  const con = new ChildConsole(child);
  await con.waitFor(/WORK2DONE/, 1_800_000);
  con.type('poweroff -f');
  assert.equal(await con.exited, 0);
  const afterRestore = steps(con.out);
  assert.ok(afterRestore.has(STEPS), 'the restored VM finished the workload');

  const want = expectedSums();
  for (const [who, got] of [['original', before], ['restored', afterRestore]] as const) {
    for (const [i, sum] of got) assert.equal(sum, want[i], `${who}: step ${i}'s checksum`);
  }
  for (let i = 1; i <= STEPS; i++) assert.ok(before.has(i) || afterRestore.has(i), `step ${i} was printed`);
  const disk = readFileSync(img);
  for (let i = 1; i <= STEPS; i++) {
    assert.equal(disk.subarray(i * 512, i * 512 + 16).toString('latin1').split('\n')[0], `rec ${i}`, `record ${i} on the disk`);
  }
});

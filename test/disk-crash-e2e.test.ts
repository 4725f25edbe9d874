// Crash safety with a real guest: the default guest writes to a qcow2 data disk,
// flushes a known block (dd conv=fsync), then keeps writing hard in the
// background while the test SIGKILLs the tsvisor process. Afterwards
// `qemu-img check` finds no corruption (leaked clusters are allowed) and the
// flushed block holds exactly the bytes the guest wrote.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildConsole } from './lib/vm-console.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('SIGKILL during guest writes: qcow2 stays consistent and flushed data survives', { timeout: budget(400_000) }, async () => {
  const guest = await ensureDefaultGuest({});
  const img = join(dir, 'data.qcow2');
  const mk = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '256M'], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--mem', '128M', '--disk', img, '--append', 'console=ttyS0'],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const c = new ChildConsole(child);
  let want: string | undefined;
  try {
    await c.waitFor(/tsvisor guest ready/, 300_000);
    await c.waitFor(/# /, 30_000);
    // A 1 MiB block of known pseudo-random bytes at offset 64 MiB, flushed to the disk.
    const made = await c.run(
      'dd if=/dev/urandom of=/tmp/m bs=65536 count=16 2>/dev/null; dd if=/tmp/m of=/dev/vda bs=65536 seek=1024 conv=fsync 2>/dev/null; sha256sum /tmp/m',
      120_000,
    );
    assert.match(made, /status 0/);
    want = /([0-9a-f]{64})\s+\/tmp\/m/.exec(made)?.[1];
    assert.ok(want, made);
    // Heavy writes elsewhere (allocating clusters all over the first 48 MiB), then a kill mid-way.
    const at = c.type('(i=0; while :; do dd if=/dev/urandom of=/dev/vda bs=65536 seek=$(( (i * 37) % 768 )) count=4 2>/dev/null; i=$((i+1)); [ $((i % 8)) = 0 ] && sync && echo SYNCED $i; done) & echo WRITING');
    await c.waitFor(/WRITING/, 30_000, at);
    // Killed mid-way through real work: after the writer's second sync, by its own report.
    await c.waitFor(/SYNCED 16/, 300_000, at);
  } finally {
    child.kill('SIGKILL');
    await c.exited;
  }
  const check = spawnSync('qemu-img', ['check', img], { encoding: 'utf8' });
  // 0: clean; 3: leaked clusters only. 2 would be corruption.
  assert.ok(check.status === 0 || check.status === 3, `qemu-img check: status ${check.status}\n${check.stdout}${check.stderr}`);
  const raw = join(dir, 'data.raw');
  const conv = spawnSync('qemu-img', ['convert', '-O', 'raw', img, raw], { encoding: 'utf8' });
  assert.equal(conv.status, 0, conv.stderr);
  const { createHash } = await import('node:crypto');
  const block = readFileSync(raw).subarray(64 << 20, (64 << 20) + (1 << 20));
  assert.equal(createHash('sha256').update(block).digest('hex'), want, 'the flushed block is intact');
});

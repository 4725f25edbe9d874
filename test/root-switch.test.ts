// The default initramfs switches to a root file system on a disk (root=/dev/vda),
// as a distribution's initramfs does. The root is a real ext4 image made by
// mkfs.ext4 from a directory holding busybox and an /sbin/init script that
// reports what it sees and powers off. Deterministic, one boot.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const TIMEOUT_MS = 6 * 60 * 1000;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-root-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function mkfsPath(): string | null {
  for (const p of ['mkfs.ext4', '/usr/sbin/mkfs.ext4', '/sbin/mkfs.ext4']) {
    if (spawnSync('sh', ['-c', `command -v ${p}`]).status === 0) return p;
  }
  return null;
}

const INIT = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "ROOTFS OK: pid $$, root $(/bin/busybox awk '$2=="/"{print $1, $4}' /proc/mounts | /bin/busybox head -1)"
/bin/busybox poweroff -f
`;

test('root=/dev/vda: the initramfs switches to the disk and runs its init as pid 1', { timeout: budget(TIMEOUT_MS + 60_000) }, async () => {
  const mkfs = mkfsPath();
  assert.ok(mkfs, 'mkfs.ext4 is missing (Debian package e2fsprogs)');
  // The default guest's own busybox (a static riscv64 binary) becomes the root's only program.
  const guest = spawnSync(process.execPath, [CLI, 'image', 'build'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(guest.status, 0, `image build failed: ${guest.stderr}`);
  const initrdLine = guest.stdout.split('\n').find((l) => l.startsWith('initrd:'));
  assert.ok(initrdLine, `no initrd path in: ${guest.stdout}`);
  const busybox = join(initrdLine.replace(/^initrd:\s*/, ''), '..', 'busybox');

  const tree = join(dir, 'tree');
  for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'tmp', 'etc']) mkdirSync(join(tree, d), { recursive: true });
  copyFileSync(busybox, join(tree, 'bin/busybox'));
  chmodSync(join(tree, 'bin/busybox'), 0o755);
  writeFileSync(join(tree, 'sbin/init'), INIT, { mode: 0o755 });
  const img = join(dir, 'root.img');
  const mk = spawnSync(mkfs, ['-q', '-F', '-d', tree, img, '16M'], { encoding: 'utf8' });
  assert.equal(mk.status, 0, `mkfs.ext4 failed: ${mk.stderr}`);

  const child = spawn(process.execPath, [CLI, 'run', '--deterministic', '--disk', img, '--append', 'console=ttyS0 root=/dev/vda rw'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString('latin1')));
  child.stderr.on('data', (b: Buffer) => (out += b.toString('latin1')));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const tail = out.slice(-2500);
  assert.match(out, /tsvisor guest: switching to \/dev\/vda/, `no switch message\n${tail}`);
  assert.match(out, /ROOTFS OK: pid 1, root \/dev\/vda rw/, `the disk's init did not run as pid 1 on a rw root\n${tail}`);
  assert.ok(!out.includes('tsvisor guest ready'), 'the initramfs shell started instead of the disk init');
  assert.equal(code, 0, `exit status ${code}\n${tail}`);
});

// End to end with storage: the real CLI boots the default guest (deterministic)
// with a data disk, an ext4 image made by mkfs.ext4 on the host. The guest mounts
// it, writes a file, syncs, unmounts and powers off; the host then reads the file
// back out of the image with debugfs. The same boot checks hvc0 and the entropy
// device. One boot of about a minute; every wait is generous.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const TIMEOUT_MS = 6 * 60 * 1000;
const CONTENT = 'tsvisor wrote this through virtio-blk 0123456789';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-disk-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}
const tools = ['mkfs.ext4', 'debugfs'].filter((t) => !have(t) && !have(`/usr/sbin/${t}`) && !have(`/sbin/${t}`));
const sbin = (t: string) => (have(t) ? t : have(`/usr/sbin/${t}`) ? `/usr/sbin/${t}` : `/sbin/${t}`);

test('a guest writes a file to an ext4 disk that the host then reads back; hvc0 and hwrng exist', { timeout: budget(TIMEOUT_MS + 60_000), skip: tools.length ? `missing ${tools.join(', ')} (e2fsprogs)` : false }, async () => {
  const img = join(dir, 'data.img');
  writeFileSync(img, '');
  truncateSync(img, 32 * 1024 * 1024);
  const mk = spawnSync(sbin('mkfs.ext4'), ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img], { encoding: 'utf8' });
  assert.equal(mk.status, 0, `mkfs.ext4 failed: ${mk.stderr}`);

  const child = spawn(process.execPath, [CLI, 'run', '--deterministic', '--rng', 'on', '--disk', `${img},serial=tsvisor-test-disk`], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  let err = '';
  let wake: () => void = () => {};
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString('latin1');
    wake();
  });
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString('latin1');
    wake();
  });
  child.stdin.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => {
    live.delete(child);
    resolve(code);
    wake();
  }));
  const deadline = Date.now() + TIMEOUT_MS;
  const waitFor = async (what: string, re: RegExp): Promise<void> => {
    while (!re.test(out)) {
      if (child.exitCode !== null) throw new Error(`tsvisor exited while waiting for ${what}\n${out.slice(-3000)}\n--- stderr ---\n${err}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${out.slice(-3000)}\n--- stderr ---\n${err}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  };
  try {
    // The prompt after init started, not the "tsvisor guest ready" line: with virtio-rng
    // attached that line is lost in a deterministic boot (a known, open bug; see README).
    await waitFor('the shell', /Run \/init[\s\S]*~ # /);
    // Markers are computed by the shell so the echoed command line never matches them.
    child.stdin.write(`mkdir -p /mnt && mount /dev/vda /mnt && echo '${CONTENT}' > /mnt/file && sync && umount /mnt && echo DISK-$((40+2))-OK\n`);
    await waitFor('the disk commands', /DISK-42-OK/);
    child.stdin.write('cat /sys/block/vda/serial; echo; ls /dev/hvc0 && echo HVC-$((1+1))-OK\n');
    await waitFor('hvc0', /HVC-2-OK/);
    child.stdin.write('head -c 16 /dev/hwrng | od -An -tx1 | wc -w; echo RNG-$((2+1))-OK\n');
    await waitFor('hwrng', /RNG-3-OK/);
    child.stdin.write('poweroff -f\n');
    const code = await Promise.race([exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no exit after poweroff')), 60_000))]);
    assert.equal(code, 0, `exit status\n${err}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  assert.match(out, /tsvisor-test-disk/, 'GET_ID serial visible in sysfs');
  assert.match(out, /\r?\n16\r?\n/, '16 bytes from /dev/hwrng');
  assert.doesNotMatch(err, /needs reset/, 'no device needed a reset');
  const dbg = spawnSync(sbin('debugfs'), ['-R', 'cat /file', img], { encoding: 'utf8' });
  assert.equal(dbg.status, 0, dbg.stderr);
  assert.equal(dbg.stdout, `${CONTENT}\n`);
  const fsck = spawnSync(sbin('e2fsck'), ['-fn', img], { encoding: 'utf8' });
  assert.equal(fsck.status, 0, `e2fsck: ${fsck.stdout}${fsck.stderr}`);
});

// Builds (or reuses) the default guest and inspects it. Needs the network the
// first time (a minute or two); later runs reuse the user's cache.
//   TSVISOR_CACHE=<dir>  use that cache directory
// Without it, the user's default cache is used when it already holds a valid
// guest, else a temporary directory that is removed afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, mkdtempSync, openSync, readSync, closeSync, readFileSync, rmSync, statSync, existsSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readCpio } from '../src/image/cpio.js';
import { panicSymbolsFor } from '../src/machine/kernel-symbols.js';
import {
  ImageBuildError, checkCachedGuest, defaultCacheDir, ensureDefaultGuest, isRiscvImage, readGuestManifest,
} from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';

async function pickCacheDir(): Promise<{ dir: string; temp: boolean }> {
  if (process.env.TSVISOR_CACHE) return { dir: process.env.TSVISOR_CACHE, temp: false };
  if (await checkCachedGuest(defaultCacheDir())) return { dir: defaultCacheDir(), temp: false };
  return { dir: mkdtempSync(join(tmpdir(), 'tsvisor-image-')), temp: true };
}

test('default guest: kernel, initramfs, modules, manifest', { timeout: budget(15 * 60_000) }, async () => {
  const { dir, temp } = await pickCacheDir();
  const lines: string[] = [];
  try {
    const g = await ensureDefaultGuest({ cacheDir: dir, progress: false, log: (s) => lines.push(s) });

    // kernel: a RISC-V Linux Image
    const head = Buffer.alloc(64);
    const fd = openSync(g.kernel, 'r');
    readSync(fd, head, 0, 64, 0);
    closeSync(fd);
    assert.ok(isRiscvImage(head), 'RSC\\x05 magic at 0x38');
    assert.match(g.version, /^\d+\.\d+\.\d+.*riscv64$/);
    assert.ok(statSync(g.kernel).size > 1 << 20);
    assert.ok(statSync(g.modulesDir).isDirectory());

    // initramfs: gzip + newc with init, busybox, console node and the modules
    const raw = readFileSync(g.initrd);
    assert.deepEqual([raw[0], raw[1]], [0x1f, 0x8b]);
    const entries = readCpio(gunzipSync(raw));
    const byPath = new Map(entries.map((e) => [e.path, e]));
    const init = byPath.get('init');
    assert.ok(init && init.type === 'file' && (init.mode! & 0o111) !== 0, '/init executable');
    const script = new TextDecoder().decode(init.data);
    assert.match(script, /tsvisor guest ready/);
    assert.match(script, /--install -s/);
    assert.match(script, /poweroff -f/);
    const bb = byPath.get('bin/busybox');
    assert.ok(bb && bb.type === 'file' && bb.data!.length > 100_000);
    assert.equal(bb.data![18] | (bb.data![19] << 8), 243, 'busybox is a RISC-V ELF (e_machine 243)');
    const con = byPath.get('dev/console');
    assert.deepEqual([con?.type, con?.major, con?.minor], ['char', 5, 1]);
    for (const d of ['dev', 'proc', 'sys', 'tmp', 'root', 'etc', 'lib/modules']) assert.equal(byPath.get(d)?.type, 'dir', d);
    assert.match(new TextDecoder().decode(byPath.get('etc/profile')!.data), /PS1=/);

    const mdir = `lib/modules/${g.version}/`;
    const mods = entries.filter((e) => e.path.startsWith(mdir) && e.path.endsWith('.ko')).map((e) => e.path.slice(e.path.lastIndexOf('/') + 1));
    for (const m of ['virtio_mmio.ko', 'virtio_blk.ko', 'virtio_net.ko', 'ext4.ko', 'jbd2.ko', 'mbcache.ko']) {
      assert.ok(mods.includes(m), `${m} in initramfs (have ${mods.join(' ')})`);
    }
    const dep = new TextDecoder().decode(byPath.get(`${mdir}modules.dep`)!.data);
    assert.match(dep, /^kernel\/fs\/ext4\/ext4\.ko: .*jbd2\.ko/m);
    // modules are stored uncompressed: each is an ELF file
    for (const e of entries.filter((x) => x.path.endsWith('.ko'))) assert.equal(e.data![0], 0x7f, e.path);
    assert.ok(raw.length < 16 << 20, `initramfs small (${raw.length} bytes)`);

    // the kernel's real System.map (from the -dbg package), which fits the kernel
    assert.ok(g.systemMap, `System.map kept (${lines.filter((l) => /System\.map/.test(l)).join('; ')})`);
    const sym = panicSymbolsFor(readFileSync(g.systemMap, 'latin1'), new Uint8Array(readFileSync(g.kernel)));
    assert.ok(sym.ok, sym.ok ? '' : sym.error);

    // manifest and cache reuse
    const man = await readGuestManifest(dir);
    assert.equal(man?.kernelVersion, g.version);
    assert.equal(man?.files.initrd.size, raw.length);
    const again = await ensureDefaultGuest({ cacheDir: dir, progress: false, log: (s) => lines.push('2: ' + s) });
    assert.deepEqual(again, g);
    assert.ok(!lines.some((l) => l.startsWith('2: ')), 'second call builds nothing');
  } finally {
    if (temp) rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing or damaged cache is not trusted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-image-'));
  try {
    assert.equal(await checkCachedGuest(dir), undefined);
    mkdirSync(join(dir, 'guest', 'modules', 'v'), { recursive: true });
    writeFileSync(join(dir, 'guest', 'vmlinux-v'), 'kernel');
    writeFileSync(join(dir, 'guest', 'initramfs.cpio.gz'), 'initrd');
    const f = (path: string, size: number) => ({ path, size, sha256: '' });
    const man = {
      format: 1, kernelVersion: 'v', modulesDir: 'modules/v',
      files: { kernel: f('vmlinux-v', 6), initrd: f('initramfs.cpio.gz', 6), busybox: f('busybox', 0) },
    };
    writeFileSync(join(dir, 'guest', 'manifest.json'), JSON.stringify(man));
    assert.equal(await checkCachedGuest(dir), undefined, 'sha256 mismatch');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreachable mirror fails with a one-line ImageBuildError', { timeout: budget(120_000) }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-image-'));
  try {
    await assert.rejects(
      ensureDefaultGuest({ cacheDir: dir, mirror: 'http://127.0.0.1:9/debian', progress: false, log: () => {} }),
      (e: unknown) => e instanceof ImageBuildError && !e.message.includes('\n') && /apt-get update failed/.test(e.message),
    );
    assert.equal(existsSync(join(dir, 'guest')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cache of the previous format gets a new initramfs from its own modules and busybox, with no download', { timeout: budget(10 * 60_000) }, async (t) => {
  const src = await checkCachedGuest(defaultCacheDir());
  if (!src) return t.skip('no cached default guest to start from');
  const g = join(defaultCacheDir(), 'guest');
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-image-'));
  try {
    // The old cache: the same kernel, modules and busybox (linked, not copied), a manifest of format 5.
    const old = join(dir, 'guest');
    mkdirSync(old);
    const man = JSON.parse(readFileSync(join(g, 'manifest.json'), 'utf8'));
    for (const rel of [man.files.kernel.path, man.files.busybox.path, man.modulesDir.split('/')[0]]) symlinkSync(join(g, rel), join(old, rel));
    copyFileSync(join(g, man.files.initrd.path), join(old, man.files.initrd.path));
    writeFileSync(join(old, 'manifest.json'), JSON.stringify({ ...man, format: 5 }));
    assert.equal(await checkCachedGuest(dir), undefined, 'format 5 is not current');
    const lines: string[] = [];
    // An unreachable mirror: anything beyond the local refresh would fail.
    const fresh = await ensureDefaultGuest({ cacheDir: dir, mirror: 'http://127.0.0.1:9/debian', progress: false, log: (s) => lines.push(s) });
    assert.match(lines.join('\n'), /updating the default guest's initramfs \(cache format 5 -> 6\)/);
    assert.doesNotMatch(lines.join('\n'), /apt|download/i);
    const entries = readCpio(gunzipSync(readFileSync(fresh.initrd)));
    const paths = new Set(entries.map((e) => e.path));
    assert.ok(paths.has('sbin/tsvisor-buttons'), 'the buttons handler');
    for (const m of ['virtio_input.ko', 'evdev.ko']) assert.ok([...paths].some((p) => p.endsWith(`/${m}`)), m);
    assert.equal((await readGuestManifest(dir))?.format, 6);
    assert.deepEqual(await checkCachedGuest(dir), fresh, 'valid now');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

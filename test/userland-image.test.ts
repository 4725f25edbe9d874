// The Debian userland disk (`tsvisor image build --userland`,
// src/image/userland-disk.ts).
//
// The fast tests always run: the CLI's refusals, and the cache check of an
// empty cache. The build itself downloads about 100 packages (about 40 MB) from
// the Debian mirror, so it is OPT-IN, like the root disk's test:
//
//   TSVISOR_USERLAND_TEST=1 node --test dist/test/userland-image.test.js
//
// It builds the disk into a fresh cache directory (or, with
// TSVISOR_USERLAND_TEST=cached, takes the user's cached one), checks the
// image's ext4 label, and runs the tree's own riscv64 binaries under
// qemu-riscv64 user mode: what the unconfigured tree must be able to do for
// the userland benchmark (python3 with sqlite3, lzma and zlib; the sqlite3
// CLI; xz; awk through the alternative the builder made by hand).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkCachedUserland, ensureUserland, USERLAND_LABEL } from '../src/image/userland-disk.js';
import { readExtLabel } from '../src/image/rootfs-disk.js';
import { openQcow2 } from '../src/storage/qcow2.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const MODE = process.env.TSVISOR_USERLAND_TEST;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-userland-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]): { status: number | null; stderr: string; stdout: string } {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: join(dir, 'cli-cache') } });
}

test('image build refuses --rootfs with --userland, and a bad --size, before building anything', () => {
  const both = cli(['image', 'build', '--rootfs', '--userland']);
  assert.equal(both.status, 2, both.stderr);
  assert.match(both.stderr, /--rootfs and --userland/);
  const small = cli(['image', 'build', '--userland', '--size', '100M']);
  assert.equal(small.status, 2, small.stderr);
  assert.match(small.stderr, /invalid --size '100M'/);
  assert.equal(readdirOrEmpty(join(dir, 'cli-cache')).length, 0, 'a refused command touched the cache');
});

function readdirOrEmpty(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

test('an empty cache holds no userland disk', async () => {
  assert.equal(await checkCachedUserland(join(dir, 'empty-cache')), undefined);
});

function hasQemuUser(): boolean {
  return spawnSync('qemu-riscv64', ['--version']).status === 0;
}

test('userland disk: built without emulation; its python3, sqlite3, xz and awk run',
  { skip: !MODE ? 'set TSVISOR_USERLAND_TEST=1 to run (downloads about 40 MB of Debian packages)' : !hasQemuUser() && 'no qemu-riscv64', timeout: budget(20 * 60_000) },
  async () => {
    const disk = await ensureUserland({ cacheDir: MODE === 'cached' ? undefined : join(dir, 'cache'), log: (s) => console.log(`# ${s}`) });
    const img = openQcow2(disk.path, { readOnly: true });
    try {
      assert.equal(readExtLabel(img), USERLAND_LABEL);
    } finally {
      img.close();
    }
    assert.ok(lstatSync(join(disk.tree, 'proc')).isDirectory(), '/proc is not a directory');
    // Absolute links, as update-alternatives makes them: they resolve inside the chroot, not on the host.
    assert.equal(readlinkSync(join(disk.tree, 'usr/bin/awk')), '/etc/alternatives/awk');
    assert.equal(readlinkSync(join(disk.tree, 'etc/alternatives/awk')), '/usr/bin/gawk');
    assert.match(readFileSync(join(disk.tree, 'etc/passwd'), 'utf8'), /^root:[^:]*:0:0:/);

    const run = (args: string[], input?: string): string => {
      const r = spawnSync('qemu-riscv64', ['-L', disk.tree, ...args], { input, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' }, timeout: budget(120_000) });
      assert.equal(r.status, 0, `${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    const py = run([join(disk.tree, 'usr/bin/python3'), '-B', '-c',
      'import sqlite3, lzma, zlib, json, pwd; d = b"tsvisor" * 1000; ' +
      'c = sqlite3.connect(":memory:"); c.execute("create table t(a)"); c.executemany("insert into t values (?)", [(i,) for i in range(100)]); ' +
      'print(c.execute("select sum(a) from t").fetchone()[0], lzma.decompress(lzma.compress(d)) == d, zlib.decompress(zlib.compress(d)) == d, pwd.getpwuid(0).pw_name)']);
    assert.equal(py.trim(), '4950 True True root');
    assert.equal(run([join(disk.tree, 'usr/bin/sqlite3'), ':memory:'], 'select 6 * 7;\n').trim(), '42');
    assert.equal(run([join(disk.tree, 'usr/bin/gawk'), 'BEGIN { printf "%d\\n", 2 ^ 10 }']).trim(), '1024');
    const xz = spawnSync('sh', ['-c', `printf tsvisor | qemu-riscv64 -L "$1" "$1/usr/bin/xz" -c | qemu-riscv64 -L "$1" "$1/usr/bin/xz" -dc`, 'sh', disk.tree], { encoding: 'utf8' });
    assert.equal(xz.stdout, 'tsvisor');
  });

// The newc writer, checked against the host's cpio(1) and against our reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { type CpioEntry, readCpio, withParents, writeCpio } from '../src/image/cpio.js';

function haveCpio(): boolean {
  if (spawnSync('cpio', ['--version']).status === 0) return true;
  if (process.getuid?.() === 0) {
    spawnSync('apt-get', ['install', '-y', '-q', 'cpio'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  return spawnSync('cpio', ['--version']).status === 0;
}

const enc = new TextEncoder();
const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

const sample: CpioEntry[] = withParents([
  { path: '/init', type: 'file', mode: 0o755, data: enc.encode('#!/bin/sh\necho hi\n') },
  { path: 'bin/busybox', type: 'file', mode: 0o755, data: bytes(4097, 7) },
  { path: 'bin/sh', type: 'symlink', target: 'busybox' },
  { path: 'etc/empty', type: 'file', data: new Uint8Array(0) },
  { path: './etc/odd-name-len.txt', type: 'file', data: bytes(3, 1) },
  { path: 'tmp', type: 'dir', mode: 0o1777 },
  { path: 'a/b/c/deep', type: 'file', mode: 0o600, data: bytes(1, 9) },
  { path: 'dev/console', type: 'char', mode: 0o600, major: 5, minor: 1 },
  { path: 'dev/vda', type: 'block', mode: 0o660, major: 254, minor: 0 },
]);

test('withParents adds missing directories before their contents', () => {
  const paths = sample.map((e) => e.path);
  for (const [i, p] of paths.entries()) {
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : undefined;
    if (parent) assert.ok(paths.indexOf(parent) >= 0 && paths.indexOf(parent) < i, `${parent} before ${p}`);
  }
  assert.ok(paths.includes('a/b/c'));
  assert.equal(paths[0], 'init');
});

test('archive layout: magic, 4-byte alignment, trailer', () => {
  const a = writeCpio(sample);
  assert.equal(new TextDecoder().decode(a.subarray(0, 6)), '070701');
  assert.equal(a.length % 4, 0);
  assert.ok(new TextDecoder().decode(a).includes('TRAILER!!!'));
});

test('round trip through our reader', () => {
  const back = readCpio(writeCpio(sample));
  assert.equal(back.length, sample.length);
  for (const [i, e] of sample.entries()) {
    const b = back[i];
    assert.equal(b.path, e.path);
    assert.equal(b.type, e.type);
    if (e.type === 'file') assert.deepEqual(Buffer.from(b.data ?? []), Buffer.from(e.data ?? []));
    if (e.type === 'symlink') assert.equal(b.target, e.target);
    if (e.type === 'char' || e.type === 'block') assert.deepEqual([b.major, b.minor], [e.major, e.minor]);
    if (e.mode !== undefined) assert.equal(b.mode, e.mode);
  }
});

test('round trip of random files (property)', () => {
  const name = fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.record({ name, data: fc.uint8Array({ maxLength: 70 }) }), { selector: (r) => r.name, maxLength: 12 }),
      (files) => {
        const entries: CpioEntry[] = files.map((f) => ({ path: `d/${f.name}`, type: 'file', data: f.data }));
        const back = readCpio(writeCpio(withParents(entries))).filter((e) => e.type === 'file');
        assert.deepEqual(back.map((e) => e.path), entries.map((e) => e.path));
        back.forEach((e, i) => assert.deepEqual(Buffer.from(e.data!), Buffer.from(entries[i].data!)));
      },
    ),
  );
});

test('rejects paths escaping the archive', () => {
  assert.throws(() => writeCpio([{ path: '../x', type: 'file' }]));
  assert.throws(() => writeCpio([{ path: 'l', type: 'symlink' }]));
});

test('host cpio lists and extracts the archive identically', (t) => {
  if (!haveCpio()) {
    t.skip('cpio not available on the host');
    return;
  }
  const archive = Buffer.from(writeCpio(sample));
  const listing = execFileSync('cpio', ['-t', '--quiet'], { input: archive }).toString().trim().split('\n');
  assert.deepEqual(listing, sample.map((e) => e.path));

  const verbose = execFileSync('cpio', ['-tv', '--quiet'], { input: archive }).toString();
  assert.match(verbose, /^crw-------\s.*5,\s+1\s.*dev\/console$/m);
  assert.match(verbose, /^drwxrwxrwt\s.*\stmp$/m);
  assert.match(verbose, /^lrwxrwxrwx\s.*bin\/sh -> busybox$/m);

  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-cpio-'));
  try {
    // device nodes need privileges to create; extract everything else
    const args = ['-i', '-d', '-m', '--quiet', '--no-absolute-filenames'];
    const root = process.getuid?.() === 0;
    const input = root ? archive : Buffer.from(writeCpio(sample.filter((e) => e.type !== 'char' && e.type !== 'block')));
    execFileSync('cpio', args, { input, cwd: dir });
    for (const e of sample) {
      const p = join(dir, e.path);
      const st = lstatSync(p);
      if (e.type === 'file') {
        assert.ok(st.isFile(), e.path);
        assert.deepEqual(readFileSync(p), Buffer.from(e.data ?? []));
        if (e.mode !== undefined) assert.equal(st.mode & 0o777, e.mode & 0o777, e.path);
      } else if (e.type === 'dir') {
        assert.ok(st.isDirectory(), e.path);
      } else if (e.type === 'symlink') {
        assert.equal(readlinkSync(p), e.target);
      } else if (root) {
        assert.ok(e.type === 'char' ? st.isCharacterDevice() : st.isBlockDevice(), e.path);
        assert.equal(statSync(p).rdev, (e.major! << 8) | e.minor!);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// `tsvisor image create` and `tsvisor image info` through the real CLI entry point.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'bin', 'tsvisor.js');
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-image-cli-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function tsvisor(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: dir });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function qemuInfo(path: string): Record<string, unknown> {
  return JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' })) as Record<string, unknown>;
}
function qemuCheck(path: string): number | null {
  return spawnSync('qemu-img', ['check', path]).status;
}

test('image create: raw and qcow2 disks of the requested size', () => {
  let r = tsvisor('image', 'create', '--size', '64M', 'disk.raw');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(statSync(join(dir, 'disk.raw')).size, 64 * 1024 * 1024);

  r = tsvisor('image', 'create', '--format', 'qcow2', '--size', '1G', 'disk.qcow2');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /qcow2, 1G/);
  const info = qemuInfo(join(dir, 'disk.qcow2'));
  assert.equal(info.format, 'qcow2');
  assert.equal(info['virtual-size'], 1024 ** 3);
  assert.equal(qemuCheck(join(dir, 'disk.qcow2')), 0);

  r = tsvisor('image', 'create', '--format', 'qcow2', '--size', '16M', '--cluster-size', '4K', 'small.qcow2');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(qemuInfo(join(dir, 'small.qcow2'))['cluster-size'], 4096);
});

test('image create --backing makes a qcow2 overlay sized like its base', () => {
  writeFileSync(join(dir, 'base.img'), Buffer.alloc(3 * 1024 * 1024, 7));
  let r = tsvisor('image', 'create', '--backing', 'base.img', 'overlay.qcow2');
  assert.equal(r.status, 0, r.stderr);
  const info = qemuInfo(join(dir, 'overlay.qcow2'));
  assert.equal(info.format, 'qcow2');
  assert.equal(info['virtual-size'], 3 * 1024 * 1024);
  assert.equal(info['backing-filename'], 'base.img');
  assert.equal(info['backing-filename-format'], 'raw');
  assert.equal(qemuCheck(join(dir, 'overlay.qcow2')), 0);

  // An overlay on the overlay; the backing format is detected as qcow2.
  r = tsvisor('image', 'create', '--backing', 'overlay.qcow2', '--size', '8M', 'top.qcow2');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(qemuInfo(join(dir, 'top.qcow2'))['backing-filename-format'], 'qcow2');

  r = tsvisor('image', 'info', 'top.qcow2');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^format: qcow2 \(version 3\)$/m);
  assert.match(r.stdout, /^virtual size: 8M \(8388608 bytes\)$/m);
  assert.match(r.stdout, /^cluster size: 65536$/m);
  assert.match(r.stdout, /^backing file: overlay\.qcow2 \(format qcow2\)$/m);
  assert.match(r.stdout, /0: top\.qcow2 \(qcow2, 8M\)\n {2}1: .*overlay\.qcow2 \(qcow2, 3M\)\n {2}2: .*base\.img \(raw, 3M\)/);
});

test('image info: allocation of a qcow2 written by qemu-io, and raw images', () => {
  const p = join(dir, 'written.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', p, '4M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 128k', p]);
  let r = tsvisor('image', 'info', p);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^allocated: 131072 bytes/m);
  writeFileSync(join(dir, 'plain.raw'), Buffer.alloc(5000));
  r = tsvisor('image', 'info', 'plain.raw');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^format: raw$/m);
  assert.match(r.stdout, /^virtual size: 5000 bytes \(5000 bytes\)$/m);
});

test('image create/info: mistakes give one-line errors', () => {
  const cases: Array<[string[], RegExp, number]> = [
    [['image', 'create', 'x.raw'], /needs --size/, 2],
    [['image', 'create', '--size', 'lots', 'x.raw'], /invalid --size 'lots'/, 2],
    [['image', 'create', '--size', '1M', '--format', 'vmdk', 'x.img'], /invalid --format 'vmdk'/, 2],
    [['image', 'create', '--format', 'raw', '--backing', 'base.img', 'x.raw'], /raw image cannot have a backing file/, 2],
    [['image', 'create', '--backing', 'missing.img', 'x.qcow2'], /backing file not found: missing\.img/, 1],
    [['image', 'create', '--size', '1M', 'disk.raw'], /already exists/, 1],
    [['image', 'create', '--format', 'qcow2', '--size', '1M', '--cluster-size', '3K', 'y.qcow2'], /invalid --cluster-size/, 2],
    [['image', 'info', 'nothere.qcow2'], /image file not found: nothere\.qcow2/, 1],
    [['image', 'info'], /needs the path of an image/, 2],
  ];
  writeFileSync(join(dir, 'base.img'), Buffer.alloc(4096));
  writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(4096));
  for (const [args, re, status] of cases) {
    const r = tsvisor(...args);
    assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}`);
    assert.match(r.stderr, /^tsvisor: /);
  }
  // A corrupt qcow2 is named as such.
  const bad = Buffer.alloc(512);
  bad.write('QFI\xfb', 0, 'latin1');
  bad.writeUInt32BE(3, 4);
  bad.writeUInt32BE(16, 20);
  bad.writeUInt32BE(1, 32);
  writeFileSync(join(dir, 'bad.qcow2'), bad);
  const r = tsvisor('image', 'info', 'bad.qcow2');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^tsvisor: bad\.qcow2: qcow2: /);
});

// `--disk PATH[,format=raw|qcow2][,readonly=on][,serial=S]`: parsing and the one-line
// errors for bad specs, missing files and unknown formats (no VM is started).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDiskSpec, parseRunArgs } from '../src/cli/main.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(repoRoot, 'bin', 'tsvisor.js');
let dir = '';
let kernel = '';
let disk = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-disk-args-'));
  const img = new Uint8Array(4096);
  img.set(new TextEncoder().encode('RISCV\0\0\0'), 0x30);
  img.set(new TextEncoder().encode('RSC\x05'), 0x38);
  kernel = join(dir, 'Image');
  writeFileSync(kernel, img);
  disk = join(dir, 'disk.img');
  writeFileSync(disk, new Uint8Array(65536));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [bin, 'run', '--kernel', kernel, ...args], { cwd: repoRoot, encoding: 'utf8', input: '', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

function oneLine(r: { status: number | null; stderr: string }, re: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.notEqual(r.status, 0);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^tsvisor: /);
  assert.match(lines[0], re);
}

describe('--disk', () => {
  test('parses path and options', () => {
    assert.deepEqual(parseDiskSpec('a.img'), { path: 'a.img', readOnly: false });
    assert.deepEqual(parseDiskSpec('a,,b.img,format=qcow2,readonly=on,serial=SN 1'), { path: 'a,b.img', format: 'qcow2', readOnly: true, serial: 'SN 1' });
    const o = parseRunArgs(['--disk', 'x.img', '--disk', 'y.img,readonly=on']);
    assert.ok(o !== 'help');
    assert.deepEqual(o.disks.map((d) => d.path), ['x.img', 'y.img']);
  });

  test('bad specs are usage errors', () => {
    assert.throws(() => parseDiskSpec(',format=raw'), /needs a file name/);
    assert.throws(() => parseDiskSpec('a.img,format=vmdk'), /unknown disk format 'vmdk'/);
    assert.throws(() => parseDiskSpec('a.img,readonly=maybe'), /readonly value/);
    assert.throws(() => parseDiskSpec('a.img,cache=none'), /unknown --disk option 'cache'/);
    assert.throws(() => parseDiskSpec('a.img,ro'), /bad --disk option 'ro'/);
    assert.throws(() => parseDiskSpec('a.img,serial=012345678901234567890'), /serial/);
    assert.throws(() => parseDiskSpec('a.img,format=raw,format=raw'), /twice/);
  });

  test('rate limits: bps with size suffixes, iops, bursts', () => {
    assert.deepEqual(parseDiskSpec('a.img,bps=10M,iops=200').limits, {
      bandwidth: { size: 10 * 1024 * 1024, refillMs: 1000 },
      ops: { size: 200, refillMs: 1000 },
    });
    assert.deepEqual(parseDiskSpec('a.img,bps=1M,bps_burst=64M').limits, {
      bandwidth: { size: 1024 * 1024, refillMs: 1000, oneTimeBurst: 64 * 1024 * 1024 },
    });
    assert.deepEqual(parseDiskSpec('a.img,iops=5,iops_burst=100').limits, { ops: { size: 5, refillMs: 1000, oneTimeBurst: 100 } });
    assert.equal(parseDiskSpec('a.img').limits, undefined);
    assert.throws(() => parseDiskSpec('a.img,bps=0'), /bps value '0'/);
    assert.throws(() => parseDiskSpec('a.img,bps=fast'), /bps value 'fast'/);
    assert.throws(() => parseDiskSpec('a.img,iops=1.5'), /iops value/);
    assert.throws(() => parseDiskSpec('a.img,bps_burst=1M'), /bps_burst needs bps/);
    assert.throws(() => parseDiskSpec('a.img,iops_burst=3'), /iops_burst needs iops/);
    const o = parseRunArgs(['--balloon', '--disk', 'x.img,iops=10']);
    assert.ok(o !== 'help');
    assert.equal(o.balloon, true);
    assert.deepEqual(o.disks[0].limits, { ops: { size: 10, refillMs: 1000 } });
  });

  test('CLI: missing file, bad option, unknown format, too many', () => {
    oneLine(run('--disk', join(dir, 'missing.img')), /disk file not found/);
    oneLine(run('--disk', `${disk},bogus=1`), /unknown --disk option 'bogus'/);
    oneLine(run('--disk', `${disk},format=vdi`), /unknown disk format 'vdi'/);
    oneLine(run('--disk', `${disk},format=qcow2`), /cannot use disk .*disk\.img: .*qcow2/);
    oneLine(run(...Array.from({ length: 7 }, () => ['--disk', disk]).flat()), /too many disks/);
  });
});

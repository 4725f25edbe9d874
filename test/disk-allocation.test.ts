// --copy-storage sends only the blocks a disk image may hold data in: a raw
// file's holes (lseek SEEK_DATA through the native addon) and clusters that no
// layer of a qcow2 chain allocates are skipped unread. Images are written by
// qemu-io (an independent writer), so the allocation is the real thing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, closeSync, ftruncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDisk } from '../src/storage/open.js';
import { hostMemory } from '../src/vm/host-memory.js';
import { allocatedBlocks } from '../src/vm/migration/worker-side.js';
import { DISK_BLOCK } from '../src/vm/migration/disk-blocks.js';

const MiB = 1 << 20;
const blocksWith = (map: Uint8Array) => [...map.keys()].filter((b) => map[b] === 1);

test('a sparse raw image: only the blocks with data are sent', async (t) => {
  const seekData = hostMemory()?.seekData;
  assert.ok(seekData, 'the native addon with seekData is built (npm run build:native)');
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-alloc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'disk.raw');
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 8 * MiB);
  writeSync(fd, new Uint8Array(4096).fill(7), 0, 4096, 3 * MiB + 100);
  writeSync(fd, new Uint8Array(10).fill(1), 0, 10, 8 * MiB - 10); // the last block, unaligned end
  closeSync(fd);
  const disk = await openDisk(path, { format: 'raw', readOnly: true, seekData });
  try {
    const got = blocksWith(allocatedBlocks(disk));
    // File systems allocate in their own block size (4 KiB here or more), never less than the data.
    const want = [Math.floor((3 * MiB + 100) / DISK_BLOCK), Math.floor((3 * MiB + 4196) / DISK_BLOCK), 8 * MiB / DISK_BLOCK - 1];
    for (const b of want) assert.ok(got.includes(b), `block ${b} (holds data) is sent: ${got}`);
    assert.ok(got.length <= 4, `only the blocks around the data are sent, not ${got.length} of ${8 * MiB / DISK_BLOCK}`);
    // What is skipped reads as zeros.
    const buf = new Uint8Array(DISK_BLOCK);
    for (let b = 0; b < 8 * MiB / DISK_BLOCK; b++) {
      if (got.includes(b)) continue;
      disk.read(b * DISK_BLOCK, buf);
      assert.ok(buf.every((x) => x === 0), `skipped block ${b} reads as zeros`);
    }
  } finally {
    disk.close();
  }
  // Without the addon's lseek, every block may hold data.
  const plain = await openDisk(path, { format: 'raw', readOnly: true });
  try {
    assert.equal(blocksWith(allocatedBlocks(plain)).length, 8 * MiB / DISK_BLOCK);
  } finally {
    plain.close();
  }
});

test('a qcow2 overlay over a qcow2 image: clusters allocated in either layer are sent, zero clusters are not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-alloc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'base.qcow2');
  const top = join(dir, 'top.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 5 1M 64k', '-c', 'write -P 6 9M 4k', base], { stdio: 'ignore' });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top, '16M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 4M 128k', '-c', 'write -z 9M 64k', top], { stdio: 'ignore' });
  const disk = await openDisk(top, { format: 'qcow2', readOnly: true, backing: { root: dir } });
  try {
    const b = (off: number) => off / DISK_BLOCK;
    // 1M from the base; 4M and 4M+64k from the overlay; 9M is zeroed in the overlay over the base's data.
    assert.deepEqual(blocksWith(allocatedBlocks(disk)), [b(1 * MiB), b(4 * MiB), b(4 * MiB) + 1]);
  } finally {
    disk.close();
  }
});

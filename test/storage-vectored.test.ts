// Vectored file I/O (src/storage/vectored.ts) against a real file: preadv and
// pwritev over more buffers than one call takes, short reads at end of file,
// and the cursor that cuts a buffer list at cluster edges.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BufCursor, preadvAll, pwritevAll, totalLength } from '../src/storage/vectored.js';
import { RawDisk } from '../src/storage/raw.js';
import { createQcow2, openQcow2 } from '../src/storage/qcow2.js';
import { ImageFile } from '../src/storage/qcow2-io.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-vec-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** `n` views of lengths 1..97 bytes over one backing array (so their order can be checked). */
function views(n: number): { all: Uint8Array; bufs: Uint8Array[] } {
  const lens = Array.from({ length: n }, (_, i) => 1 + ((i * 37) % 97));
  const all = new Uint8Array(lens.reduce((a, b) => a + b, 0) + n);
  const bufs: Uint8Array[] = [];
  let p = 0;
  for (const l of lens) {
    bufs.push(all.subarray(p, p + l));
    p += l + 1; // a gap byte between views stays untouched
  }
  return { all, bufs };
}

test('pwritevAll and preadvAll move 3000 buffers (more than IOV_MAX) in order', () => {
  const path = join(dir, 'a.bin');
  writeFileSync(path, new Uint8Array(0));
  const fd = openSync(path, 'r+');
  try {
    const src = views(3000);
    src.bufs.forEach((b, i) => b.fill((i * 13 + 1) & 0xff));
    pwritevAll(fd, src.bufs, 100);
    const file = readFileSync(path);
    const total = totalLength(src.bufs);
    assert.equal(file.length, 100 + total);
    let p = 100;
    for (const b of src.bufs) {
      assert.deepEqual(new Uint8Array(file.subarray(p, p + b.length)), b);
      p += b.length;
    }
    const dst = views(3000);
    dst.all.fill(0xaa);
    assert.equal(preadvAll(fd, dst.bufs, 100), total);
    dst.bufs.forEach((b, i) => assert.deepEqual(b, src.bufs[i], `buffer ${i}`));
    // The gap bytes between the views were not written.
    let q = 0;
    for (const b of dst.bufs) {
      q += b.length;
      assert.equal(dst.all[q], 0xaa);
      q++;
    }
  } finally {
    closeSync(fd);
  }
});

test('preadvAll stops at end of file and says how much it read', () => {
  const path = join(dir, 'short.bin');
  writeFileSync(path, Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff));
  const fd = openSync(path, 'r');
  try {
    const bufs = [new Uint8Array(300), new Uint8Array(300), new Uint8Array(300)];
    assert.equal(preadvAll(fd, bufs, 500), 500);
    assert.equal(bufs[0][0], 500 & 0xff);
    assert.equal(bufs[1][199], 999 & 0xff);
    assert.ok(bufs[2].every((x) => x === 0));
  } finally {
    closeSync(fd);
  }
});

test('RawDisk.readv fills what a truncated file no longer has with zeroes; writev refuses a range past the end', () => {
  const path = join(dir, 'raw.img');
  writeFileSync(path, new Uint8Array(8192).fill(7));
  const disk = RawDisk.open(path);
  try {
    writeFileSync(path, new Uint8Array(5000).fill(7)); // shrunk behind the disk's back
    const bufs = [new Uint8Array(4096).fill(1), new Uint8Array(4096).fill(1)];
    disk.readv(0, bufs);
    assert.ok(bufs[0].every((x) => x === 7));
    assert.ok(bufs[1].subarray(0, 904).every((x) => x === 7));
    assert.ok(bufs[1].subarray(904).every((x) => x === 0));
    assert.throws(() => disk.writev(4096, [new Uint8Array(4096), new Uint8Array(1)]), RangeError);
  } finally {
    disk.close();
  }
});

test('BufCursor hands out consecutive views across buffer edges', () => {
  const bufs = [new Uint8Array(5), new Uint8Array(0), new Uint8Array(3), new Uint8Array(8)];
  let v = 0;
  for (const b of bufs) for (let i = 0; i < b.length; i++) b[i] = v++;
  const c = new BufCursor(bufs);
  const flat = (l: Uint8Array[]) => l.flatMap((x) => Array.from(x));
  assert.deepEqual(flat(c.take(4)), [0, 1, 2, 3]);
  const mid = c.take(6);
  assert.deepEqual(flat(mid), [4, 5, 6, 7, 8, 9]);
  assert.equal(mid.length, 3, 'three pieces: the end of the first buffer, the third, the start of the fourth');
  assert.deepEqual(flat(c.take(100)), [10, 11, 12, 13, 14, 15]);
  assert.deepEqual(c.take(1), []);
  // Views, not copies.
  const d = new BufCursor(bufs);
  d.take(1)[0][0] = 99;
  assert.equal(bufs[0][0], 99);
});

test('qcow2 writev: clusters that follow one another in the file go out in one write; overwrites and reads back match', () => {
  const path = join(dir, 'merge.qcow2');
  createQcow2(path, { size: 1 << 20, clusterBits: 12 });
  const img = openQcow2(path);
  const writes: { pos: number; len: number }[] = [];
  ImageFile.recorder = { write: (p, pos, data) => p === path && writes.push({ pos, len: data.length }), sync: () => {} };
  try {
    // 8 clusters of 4 KiB in 64 scattered views of 512 bytes, as a guest request arrives.
    const bufs: Uint8Array[] = [];
    const src = Uint8Array.from({ length: 8 * 4096 }, (_, i) => (i * 13 + 7) & 0xff);
    for (let i = 0; i < 64; i++) bufs.push(src.subarray(i * 512, (i + 1) * 512));
    img.writev(0, bufs);
    const data = writes.filter((w) => w.len >= 4096);
    assert.equal(data.length, 1, `one data write for 8 new clusters allocated in order, got ${JSON.stringify(writes)}`);
    assert.equal(data[0].len, 8 * 4096);
    writes.length = 0;
    // Overwriting the same clusters in place: again one call, whatever the metadata does.
    const again = src.map((b) => b ^ 0x5a);
    img.writev(4096, [again.subarray(0, 3 * 4096), again.subarray(3 * 4096, 6 * 4096)]);
    assert.equal(writes.length, 1);
    const back = new Uint8Array(8 * 4096);
    img.readv(0, [back.subarray(0, 100), back.subarray(100)]);
    assert.deepEqual(back.subarray(0, 4096), src.subarray(0, 4096));
    assert.deepEqual(back.subarray(4096, 7 * 4096), again.subarray(0, 6 * 4096));
    assert.deepEqual(back.subarray(7 * 4096), src.subarray(7 * 4096));
    img.flush();
  } finally {
    ImageFile.recorder = undefined;
    img.close();
  }
  // Reopened from the file: the data is really there.
  const re = openQcow2(path, { readOnly: true });
  const out = new Uint8Array(4096);
  re.read(0, out);
  re.close();
  assert.equal(out[5], (5 * 13 + 7) & 0xff);
});

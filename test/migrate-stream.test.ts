// The migration stream codec: frames and page batches round-trip; corrupted,
// truncated and forged streams are refused with a MigrationStreamError (never
// another exception), and no page index outside guest RAM ever gets through.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FrameDecoder, FrameType, MigrationStreamError, PAGE_SIZE, decodeJson, decodePages, encodeFrame, encodeJson, encodePages, MAX_BATCH_PAGES,
} from '../src/vm/migration/stream.js';
import { applyPages, encodePageFrames } from '../src/vm/migration/worker-side.js';
import { FramedSocket } from '../src/vm/migration/framed-socket.js';
import { createServer, connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DISK_BLOCK, applyDiskBlocks, decodeDiskBlocks, encodeDiskFrames } from '../src/vm/migration/disk-blocks.js';
import { DiskCopy } from '../src/vm/migration/worker-side.js';
import { SwappableDisk } from '../src/vm/migration/swappable-disk.js';
import { RawDisk } from '../src/storage/raw.js';
import { budget } from './lib/budget.js';

const PAGES = 64;

function batch(indexes: number[], fill: (p: number) => number): Uint8Array {
  const data = new Uint8Array(indexes.length * PAGE_SIZE);
  indexes.forEach((_, i) => data.fill(fill(i), i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
  return data;
}

test('frames and page batches round-trip, zero pages travel as a flag', () => {
  const idx = [3, 0, 63, 7];
  const data = batch(idx, (i) => (i === 1 ? 0 : i + 1));
  const payload = encodePages(idx, data);
  assert.equal(payload.length, 4 + 4 * 4 + 3 * PAGE_SIZE, 'the zero page carries no data');
  const stream = [encodeJson(FrameType.HELLO, { a: 1 }), encodeFrame(FrameType.PAGES, payload), encodeJson(FrameType.COMMIT, {})];
  const all = new Uint8Array(stream.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of stream) {
    all.set(f, at);
    at += f.length;
  }
  // Fed in awkward pieces: frames still come out whole.
  const dec = new FrameDecoder();
  const frames = [];
  for (let i = 0; i < all.length; i += 1000) frames.push(...dec.push(all.subarray(i, i + 1000)));
  assert.deepEqual(frames.map((f) => f.type), [FrameType.HELLO, FrameType.PAGES, FrameType.COMMIT]);
  assert.deepEqual(decodeJson(frames[0]), { a: 1 });
  const b = decodePages(frames[1].payload, PAGES);
  assert.deepEqual([...b.indexes], idx);
  const ram = new Uint8Array(PAGES * PAGE_SIZE).fill(0xee);
  applyPages(ram, b.indexes, b.offsets, b.data);
  assert.equal(ram[3 * PAGE_SIZE], 1);
  assert.equal(ram[0], 0, 'zero page written as zeros');
  assert.equal(ram[63 * PAGE_SIZE + 4095], 3);
  assert.equal(ram[7 * PAGE_SIZE], 4);
  assert.equal(ram[1 * PAGE_SIZE], 0xee, 'pages not in the batch untouched');
});

test('a page outside guest RAM, a bad count or a wrong length is refused', () => {
  const one = encodePages([5], batch([5], () => 9));
  assert.throws(() => decodePages(one, 5), /outside guest RAM/);
  const dv = new DataView(one.buffer);
  dv.setUint32(0, 0, true);
  assert.throws(() => decodePages(one, 64), /pages/);
  dv.setUint32(0, MAX_BATCH_PAGES + 1, true);
  assert.throws(() => decodePages(one, 64), /pages/);
  dv.setUint32(0, 1, true);
  assert.throws(() => decodePages(one.subarray(0, one.length - 1), 64), /bytes/);
  assert.throws(() => decodePages(new Uint8Array(2), 64), MigrationStreamError);
});

test('hostile streams: random corruption and truncation give clear errors, never a write outside RAM', () => {
  const good = [
    encodeJson(FrameType.HELLO, { magic: 'x', n: 1 }),
    encodeFrame(FrameType.PAGES, encodePages([1, 2, 60], batch([1, 2, 60], (i) => i * 7 + 1))),
    encodeJson(FrameType.STATE, { machine: { a: [1, 2, 3] } }),
  ];
  const stream = new Uint8Array(good.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of good) {
    stream.set(f, at);
    at += f.length;
  }
  fc.assert(
    fc.property(
      fc.array(fc.record({ pos: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }),
      fc.nat(),
      fc.nat(),
      (flips, cut, split) => {
        const s = stream.slice(0, (cut % stream.length) + 1);
        for (const f of flips) s[f.pos % s.length] ^= f.xor;
        const ram = new Uint8Array(PAGES * PAGE_SIZE);
        const dec = new FrameDecoder();
        try {
          const k = split % (s.length + 1);
          for (const f of [...dec.push(s.subarray(0, k)), ...dec.push(s.subarray(k))]) {
            if (f.type === FrameType.PAGES) {
              const b = decodePages(f.payload, PAGES);
              applyPages(ram, b.indexes, b.offsets, b.data);
            } else decodeJson(f);
          }
        } catch (e) {
          assert.ok(e instanceof MigrationStreamError, `unexpected ${String(e)}`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test("the worker's ready-made frames are the codec's frames: split at the batch limit, zero pages as flags, checksums right", () => {
  const pages = MAX_BATCH_PAGES * 2 + 5;
  const ram = new Uint8Array(pages * PAGE_SIZE);
  // Every third page zero, the rest marked with their index.
  for (let p = 0; p < pages; p++) if (p % 3) new DataView(ram.buffer).setUint32(p * PAGE_SIZE + 4092, p + 1, true);
  const idx = Array.from({ length: pages }, (_, i) => pages - 1 - i); // any order
  const frames = new FrameDecoder().push(encodePageFrames(ram, idx));
  assert.equal(frames.length, 3, 'split into frames of at most MAX_BATCH_PAGES');
  const got = new Uint8Array(ram.length).fill(0xee);
  let n = 0;
  for (const [i, f] of frames.entries()) {
    assert.equal(f.type, FrameType.PAGES);
    const chunk = idx.slice(i * MAX_BATCH_PAGES, (i + 1) * MAX_BATCH_PAGES);
    // Byte for byte what encodePages gives for the same pages.
    const data = new Uint8Array(chunk.length * PAGE_SIZE);
    chunk.forEach((pg, k) => data.set(ram.subarray(pg * PAGE_SIZE, (pg + 1) * PAGE_SIZE), k * PAGE_SIZE));
    assert.deepEqual(f.payload, encodePages(chunk, data));
    const b = decodePages(f.payload, pages);
    applyPages(got, b.indexes, b.offsets, b.data);
    n += b.indexes.length;
  }
  assert.equal(n, pages);
  assert.deepEqual(got, ram);
  assert.equal(encodePageFrames(ram, []).length, 0, 'no pages, no frames');
});

test('a closed connection ends as soon as both sides close, even with frames left unread (no waiting for the grace timer)', { timeout: budget(60_000) }, async () => {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  // allowHalfOpen, as the daemon's HTTP server sockets are; a grace far beyond the test's own timeout.
  const raw = await accepted;
  const hour = 3_600_000;
  const a = new FramedSocket(client, undefined, hour);
  const b = new FramedSocket(raw, undefined, hour);
  // b gets more frames than it queues before pausing the socket, and reads none of them.
  for (let i = 0; i < 40; i++) await a.send(encodeJson(FrameType.ROUND, { round: i }));
  await b.send(encodeJson(FrameType.RUNNING, {}));
  assert.equal((await a.next()).type, FrameType.RUNNING);
  await Promise.all([a.close(), b.close()]);
  assert.ok(client.destroyed && raw.destroyed);
  server.close();
});

test('disk blocks: a real disk copied in rounds, writes during a round sent again, zero blocks as flags; hostile frames refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-diskcopy-'));
  try {
    // 5.5 blocks: the last one is partial.
    const size = 5 * DISK_BLOCK + DISK_BLOCK / 2;
    const content = new Uint8Array(size);
    content.fill(7, DISK_BLOCK, 2 * DISK_BLOCK);
    content.fill(9, 5 * DISK_BLOCK);
    writeFileSync(join(dir, 'src.raw'), content);
    const raw = RawDisk.open(join(dir, 'src.raw'));
    const disk = new SwappableDisk(raw.size, false, raw);
    const copy = new DiskCopy([disk]);
    const target = new Uint8Array(size).fill(0xee);
    const apply = (frames: Uint8Array) => {
      let n = 0;
      for (const f of new FrameDecoder().push(frames)) {
        const b = decodeDiskBlocks(f.payload, [size]);
        applyDiskBlocks(b, size, (at, d) => target.set(d, at), (at, len) => target.fill(0, at, at + len));
        n += b.blocks.length;
      }
      return n;
    };
    // Round 0 in two takes; the guest writes into block 3 between them.
    const first = copy.take(4);
    assert.equal(first.blocks, 4);
    assert.ok(first.frames.length < 2 * DISK_BLOCK + 1024, 'two blocks of data, two zero blocks as flags');
    disk.write(3 * DISK_BLOCK + 10, Uint8Array.of(1, 2, 3));
    apply(first.frames);
    apply(copy.take(100).frames);
    assert.equal(copy.take(100).blocks, 0);
    assert.equal(copy.dirtyNow(), 1);
    assert.equal(copy.nextRound(), 1, 'only the written block');
    assert.equal(apply(copy.take(100).frames), 1);
    assert.deepEqual(target, new Uint8Array(readAll(disk)));
    copy.end();
    disk.close();
    // Hostile: a block beyond the disk, a disk that is not copied, a length that lies.
    const one = encodeDiskFrames(0, [5], (_b, into) => into.fill(1));
    const payload = new FrameDecoder().push(one)[0].payload;
    assert.throws(() => decodeDiskBlocks(payload, [5 * DISK_BLOCK]), /beyond disk 0/);
    assert.throws(() => decodeDiskBlocks(payload, []), /disk 0 does not exist/);
    assert.throws(() => decodeDiskBlocks(payload.subarray(0, payload.length - 1), [size]), /bytes/);
    assert.throws(() => decodeDiskBlocks(Uint8Array.of(0, 1, 0, 0, 1, 0, 0, 0), [size]), /reserved/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function readAll(d: SwappableDisk): Uint8Array {
  const b = new Uint8Array(d.size);
  d.read(0, b);
  return b;
}

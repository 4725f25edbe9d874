// virtio-blk at device level: a fake driver builds requests in fake guest RAM and
// the device serves them from a raw disk in a temporary file.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioBlk, CFG_CAPACITY, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD } from '../src/devices/virtio/blk/device.js';
import {
  VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP,
} from '../src/devices/virtio/blk/request.js';
import { VIRTQ_DESC_F_NEXT as NEXT, VIRTQ_DESC_F_WRITE as WRITE, VIRTQ_DESC_F_INDIRECT as INDIRECT } from '../src/devices/virtio/queue.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_STATUS } from '../src/devices/virtio/mmio.js';
import { RawDisk } from '../src/storage/raw.js';
import { openDisk } from '../src/storage/open.js';
import { createQcow2, openQcow2 } from '../src/storage/qcow2.js';
import type { BlockBackend } from '../src/storage/backend.js';
import { bringUp, BASE, DESC, DATA, type Harness } from './fixtures/virtio-driver.js';

const SIZE = 8;
const DISK_BYTES = 1 << 20; // 2048 sectors
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-blk-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function makeDisk(fill?: (b: Uint8Array) => void): string {
  const p = join(dir, `disk${n++}.img`);
  const b = new Uint8Array(DISK_BYTES);
  fill?.(b);
  writeFileSync(p, b);
  return p;
}

const HDR = DATA;
const BUF = DATA + 0x1000;
const STATUS = DATA + 0x100;

/** Issue one request: header, optional data (direction by `write`), status byte. Returns the status and used length. */
function request(h: Harness, type: number, sector: number, data?: { len: number; deviceWrites: boolean }, head = 0): { status: number; used: number } {
  const r = h.ram;
  r.dv.setUint32(HDR - BASE, type, true);
  r.dv.setUint32(HDR - BASE + 4, 0, true);
  r.dv.setBigUint64(HDR - BASE + 8, BigInt(sector), true);
  r.ram[STATUS - BASE] = 0xff;
  let i = head;
  r.setDesc(DESC, i, HDR, 16, NEXT, i + 1);
  i++;
  if (data) {
    r.setDesc(DESC, i, BUF, data.len, NEXT | (data.deviceWrites ? WRITE : 0), i + 1);
    i++;
  }
  r.setDesc(DESC, i, STATUS, 1, WRITE);
  const before = r.usedIdx();
  r.offer(SIZE, head);
  h.notify();
  assert.equal(r.usedIdx(), (before + 1) & 0xffff, 'request completed');
  const e = r.usedElem(SIZE, before);
  assert.equal(e.id, head);
  return { status: r.ram[STATUS - BASE], used: e.len };
}

function blk(path: string, readOnly = false, serial = 'tsvisor-serial-0001'): { h: Harness; disk: RawDisk } {
  const disk = RawDisk.open(path, { readOnly });
  const h = bringUp(new VirtioBlk({ backend: disk, serial }), SIZE, { featuresLo: (1 << 28) | (1 << 29) });
  return { h, disk };
}

describe('virtio-blk on a raw file', () => {
  test('config: capacity in sectors and feature bits', () => {
    const { h, disk } = blk(makeDisk());
    assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG + CFG_CAPACITY, 4), DISK_BYTES / 512);
    assert.equal(h.transport.read(VIRTIO_MMIO_CONFIG + CFG_CAPACITY + 4, 4), 0);
    h.transport.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, 0);
    const f = h.transport.read(VIRTIO_MMIO_DEVICE_FEATURES, 4);
    assert.ok(f & (1 << VIRTIO_BLK_F_FLUSH));
    assert.ok(f & (1 << VIRTIO_BLK_F_DISCARD));
    assert.equal(f & (1 << VIRTIO_BLK_F_RO), 0);
    disk.close();
  });

  test('IN reads the file; OUT writes it; FLUSH succeeds', () => {
    const path = makeDisk((b) => {
      for (let i = 0; i < b.length; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
    });
    const { h, disk } = blk(path);
    const rd = request(h, VIRTIO_BLK_T_IN, 3, { len: 1024, deviceWrites: true });
    assert.deepEqual(rd, { status: VIRTIO_BLK_S_OK, used: 1025 });
    const expect = readFileSync(path).subarray(3 * 512, 5 * 512);
    assert.deepEqual(Buffer.from(h.ram.bytes(BUF, 1024)), expect);

    h.ram.bytes(BUF, 512).fill(0x5a);
    assert.deepEqual(request(h, VIRTIO_BLK_T_OUT, 100, { len: 512, deviceWrites: false }), { status: VIRTIO_BLK_S_OK, used: 1 });
    assert.deepEqual(request(h, VIRTIO_BLK_T_FLUSH, 0), { status: VIRTIO_BLK_S_OK, used: 1 });
    disk.close();
    const after = readFileSync(path);
    assert.ok(after.subarray(100 * 512, 101 * 512).every((x) => x === 0x5a));
    assert.equal(after[101 * 512], expect.length ? ((101 * 512 * 7 + 101) & 0xff) : 0);
  });

  test('GET_ID returns the 20-byte serial', () => {
    const { h, disk } = blk(makeDisk());
    assert.deepEqual(request(h, VIRTIO_BLK_T_GET_ID, 0, { len: 20, deviceWrites: true }), { status: VIRTIO_BLK_S_OK, used: 21 });
    assert.equal(Buffer.from(h.ram.bytes(BUF, 20)).toString('latin1'), 'tsvisor-serial-0001\0');
    disk.close();
  });

  test('DISCARD and WRITE_ZEROES', () => {
    const path = makeDisk((b) => b.fill(0xee));
    const { h, disk } = blk(path);
    const seg = (sector: number, count: number, flags: number) => {
      h.ram.dv.setBigUint64(BUF - BASE, BigInt(sector), true);
      h.ram.dv.setUint32(BUF - BASE + 8, count, true);
      h.ram.dv.setUint32(BUF - BASE + 12, flags, true);
    };
    seg(10, 4, 0);
    assert.equal(request(h, VIRTIO_BLK_T_WRITE_ZEROES, 0, { len: 16, deviceWrites: false }).status, VIRTIO_BLK_S_OK);
    seg(20, 2, 0);
    assert.equal(request(h, VIRTIO_BLK_T_DISCARD, 0, { len: 16, deviceWrites: false }).status, VIRTIO_BLK_S_OK);
    seg(2040, 16, 0);
    assert.equal(request(h, VIRTIO_BLK_T_WRITE_ZEROES, 0, { len: 16, deviceWrites: false }).status, VIRTIO_BLK_S_IOERR, 'past the end');
    seg(20, 2, 0x80);
    assert.equal(request(h, VIRTIO_BLK_T_DISCARD, 0, { len: 16, deviceWrites: false }).status, VIRTIO_BLK_S_UNSUPP, 'unknown flags');
    disk.close();
    const b = readFileSync(path);
    assert.ok(b.subarray(10 * 512, 14 * 512).every((x) => x === 0));
    assert.equal(b[9 * 512 + 511], 0xee);
    assert.equal(b[14 * 512], 0xee);
  });

  test('ranges past the capacity and unknown types', () => {
    const { h, disk } = blk(makeDisk());
    assert.equal(request(h, VIRTIO_BLK_T_IN, 2047, { len: 1024, deviceWrites: true }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(h, VIRTIO_BLK_T_IN, 2 ** 52, { len: 512, deviceWrites: true }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(h, VIRTIO_BLK_T_OUT, 2048, { len: 512, deviceWrites: false }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(h, 99, 0).status, VIRTIO_BLK_S_UNSUPP);
    assert.equal(h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET, 0);
    disk.close();
  });

  test('a read-only disk offers RO and refuses writes with IOERR, leaving the file alone', () => {
    const path = makeDisk((b) => b.fill(1));
    const { h, disk } = blk(path, true);
    h.transport.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, 0);
    assert.ok(h.transport.read(VIRTIO_MMIO_DEVICE_FEATURES, 4) & (1 << VIRTIO_BLK_F_RO));
    h.ram.bytes(BUF, 512).fill(9);
    assert.equal(request(h, VIRTIO_BLK_T_OUT, 0, { len: 512, deviceWrites: false }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(h, VIRTIO_BLK_T_IN, 0, { len: 512, deviceWrites: true }).status, VIRTIO_BLK_S_OK);
    disk.close();
    assert.ok(readFileSync(path).every((x) => x === 1));
  });

  test('a request through an indirect table', () => {
    const path = makeDisk((b) => b.fill(0x42));
    const { h, disk } = blk(path);
    const IND = DATA + 0x8000;
    h.ram.dv.setUint32(HDR - BASE, VIRTIO_BLK_T_IN, true);
    h.ram.dv.setBigUint64(HDR - BASE + 8, 0n, true);
    h.ram.setDesc(IND, 0, HDR, 16, NEXT, 1);
    h.ram.setDesc(IND, 1, BUF, 512, NEXT | WRITE, 2);
    h.ram.setDesc(IND, 2, STATUS, 1, WRITE);
    h.ram.setDesc(DESC, 0, IND, 48, INDIRECT);
    h.ram.offer(SIZE, 0);
    h.notify();
    assert.equal(h.ram.ram[STATUS - BASE], VIRTIO_BLK_S_OK);
    assert.ok(h.ram.bytes(BUF, 512).every((x) => x === 0x42));
    disk.close();
  });

  test('a request scattered over many pages, some of them neighbours in RAM, on raw and qcow2', () => {
    // Pieces of 512 bytes to 8 KiB at 4 KiB-aligned places in shuffled order, with
    // runs of neighbours among them (they reach the host as one I/O vector each).
    const PIECES = 40;
    const layout = (seed: number): { addr: number; len: number }[] => {
      let x = seed;
      const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8);
      const slots = Array.from({ length: 2 * PIECES }, (_, i) => i);
      for (let i = slots.length - 1; i > 0; i--) {
        const j = rnd() % (i + 1);
        [slots[i], slots[j]] = [slots[j], slots[i]];
      }
      const out: { addr: number; len: number }[] = [];
      for (let i = 0; i < PIECES; i++) {
        // Every third piece continues the previous one in RAM.
        const prev = out[i - 1];
        if (prev && i % 3 === 0 && prev.len === 4096) out.push({ addr: prev.addr + 4096, len: 512 * (1 + (rnd() % 8)) });
        else out.push({ addr: DATA + 0x10000 + slots[i] * 0x2000, len: i % 3 === 2 ? 4096 : 512 * (1 + (rnd() % 8)) });
      }
      return out;
    };
    const IND = DATA + 0x8000;
    const run = (h: Harness, type: number, sector: number, pieces: { addr: number; len: number }[]) => {
      h.ram.dv.setUint32(HDR - BASE, type, true);
      h.ram.dv.setBigUint64(HDR - BASE + 8, BigInt(sector), true);
      h.ram.ram[STATUS - BASE] = 0xff;
      h.ram.setDesc(IND, 0, HDR, 16, NEXT, 1);
      pieces.forEach((p, i) => h.ram.setDesc(IND, i + 1, p.addr, p.len, NEXT | (type === VIRTIO_BLK_T_IN ? WRITE : 0), i + 2));
      h.ram.setDesc(IND, pieces.length + 1, STATUS, 1, WRITE);
      h.ram.setDesc(DESC, 0, IND, 16 * (pieces.length + 2), INDIRECT);
      h.ram.offer(SIZE, 0);
      h.notify();
      return h.ram.ram[STATUS - BASE];
    };
    const backends: [string, () => BlockBackend][] = [
      ['raw', () => RawDisk.open(makeDisk())],
      ['qcow2, 4 KiB clusters', () => {
        const p = join(dir, `disk${n++}.qcow2`);
        createQcow2(p, { size: DISK_BYTES, clusterBits: 12 });
        return openQcow2(p);
      }],
    ];
    for (const [name, open] of backends) {
      const disk = open();
      const h = bringUp(new VirtioBlk({ backend: disk }), SIZE, { featuresLo: (1 << 28) | (1 << 29) });
      const out = layout(7);
      const total = out.reduce((a, p) => a + p.len, 0);
      const expected = new Uint8Array(total);
      let at = 0;
      for (const p of out) {
        const b = h.ram.bytes(p.addr, p.len);
        for (let i = 0; i < p.len; i++) b[i] = (at + i * 7 + (at >> 9)) & 0xff;
        expected.set(b, at);
        at += p.len;
      }
      const sector = 5; // not cluster aligned
      assert.equal(run(h, VIRTIO_BLK_T_OUT, sector, out), VIRTIO_BLK_S_OK, `${name}: write`);
      const back = new Uint8Array(total);
      disk.read(sector * 512, back);
      assert.deepEqual(back, expected, `${name}: the disk holds the pieces in order`);
      // Read it back into another scattered layout.
      const inn = layout(11);
      const inTotal = inn.reduce((a, p) => a + p.len, 0);
      for (const p of inn) h.ram.bytes(p.addr, p.len).fill(0xee);
      assert.equal(run(h, VIRTIO_BLK_T_IN, sector, inn), VIRTIO_BLK_S_OK, `${name}: read`);
      const got = new Uint8Array(inTotal);
      at = 0;
      for (const p of inn) {
        got.set(h.ram.bytes(p.addr, p.len), at);
        at += p.len;
      }
      const want = new Uint8Array(inTotal);
      disk.read(sector * 512, want);
      assert.deepEqual(got, want, `${name}: the pieces hold the disk in order`);
      assert.deepEqual(got.subarray(0, Math.min(total, inTotal)), expected.subarray(0, Math.min(total, inTotal)), `${name}: what was written`);
      disk.close();
    }
  });

  test('a short header or a missing status byte makes the device need a reset', () => {
    for (const bad of ['short', 'nostatus'] as const) {
      const { h, disk } = blk(makeDisk());
      if (bad === 'short') {
        h.ram.setDesc(DESC, 0, HDR, 8, NEXT, 1);
        h.ram.setDesc(DESC, 1, STATUS, 1, WRITE);
      } else {
        h.ram.setDesc(DESC, 0, HDR, 16, 0);
      }
      h.ram.offer(SIZE, 0);
      h.notify();
      assert.ok(h.transport.read(VIRTIO_MMIO_STATUS, 4) & STATUS_DEVICE_NEEDS_RESET, bad);
      assert.match(h.logs[0], bad === 'short' ? /header is 8 bytes/ : /no writable status/);
      disk.close();
    }
  });

  test('openDisk detects raw and refuses a missing file with a clear message', async () => {
    const d = await openDisk(makeDisk());
    assert.equal(d.size, DISK_BYTES);
    d.close();
    await assert.rejects(openDisk(join(dir, 'nope.img')), /disk file not found/);
  });
});

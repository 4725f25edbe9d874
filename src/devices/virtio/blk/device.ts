// virtio-blk (device id 2): one request queue served synchronously from a
// BlockBackend. Data moves straight between guest RAM and the backend.
//
// Read-only disks (VIRTIO_BLK_F_RO) answer writes, discards and write-zeroes with
// VIRTIO_BLK_S_IOERR, as QEMU does; Linux never sends them since it marks the
// disk read-only from the feature bit. A backend that throws (host I/O error)
// also yields IOERR: host errors never reach the guest loop.

import type { AccessSize } from '../../device.js';
import type { BlockBackend } from '../../../storage/backend.js';
import { type VirtioContext, type VirtioDevice, bit } from '../mmio.js';
import { scatter, slices } from '../queue.js';
import {
  type BlkRequest, type ParseLimits, parseRequest, SECTOR_SIZE, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
} from './request.js';

export const VIRTIO_ID_BLOCK = 2;

// ---- Feature bits ----
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

// ---- Config space layout ----
export const CFG_CAPACITY = 0x00; // u64, 512-byte sectors
export const CFG_SEG_MAX = 0x0c; // u32
export const CFG_BLK_SIZE = 0x14; // u32
export const CFG_MAX_DISCARD_SECTORS = 0x24; // u32
export const CFG_MAX_DISCARD_SEG = 0x28; // u32
export const CFG_DISCARD_SECTOR_ALIGNMENT = 0x2c; // u32
export const CFG_MAX_WRITE_ZEROES_SECTORS = 0x30; // u32
export const CFG_MAX_WRITE_ZEROES_SEG = 0x34; // u32
export const CFG_WRITE_ZEROES_MAY_UNMAP = 0x38; // u8
export const CFG_SIZE = 0x40;

export const QUEUE_SIZE = 256;
const MAX_DISCARD_SECTORS = 0x40_0000; // 2 GiB per segment
const MAX_SEGMENTS = 1;

export interface BlkOptions {
  backend: BlockBackend;
  /** Up to 20 bytes reported by GET_ID. */
  serial?: string;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly name: string;
  readonly features: bigint;
  readonly queueSizes = [QUEUE_SIZE];
  private readonly config = new Uint8Array(CFG_SIZE);
  private readonly serial: Uint8Array;
  private readonly limits: ParseLimits;
  private ctx: VirtioContext | null = null;
  private readonly backend: BlockBackend;

  constructor(opts: BlkOptions, name = 'virtio-blk') {
    this.name = name;
    this.backend = opts.backend;
    const ro = opts.backend.readOnly;
    let f = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH);
    f |= ro ? bit(VIRTIO_BLK_F_RO) : bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
    this.features = f;
    this.serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    this.serial.set(new TextEncoder().encode(opts.serial ?? '').subarray(0, VIRTIO_BLK_ID_BYTES));
    const capacity = Math.floor(opts.backend.size / SECTOR_SIZE);
    this.limits = {
      capacity,
      maxDiscardSectors: MAX_DISCARD_SECTORS,
      maxDiscardSeg: MAX_SEGMENTS,
      maxWriteZeroesSectors: MAX_DISCARD_SECTORS,
      maxWriteZeroesSeg: MAX_SEGMENTS,
    };
    const dv = new DataView(this.config.buffer);
    dv.setUint32(CFG_CAPACITY, capacity >>> 0, true);
    dv.setUint32(CFG_CAPACITY + 4, Math.floor(capacity / 0x1_0000_0000), true);
    dv.setUint32(CFG_SEG_MAX, QUEUE_SIZE - 2, true);
    dv.setUint32(CFG_BLK_SIZE, SECTOR_SIZE, true);
    dv.setUint32(CFG_MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS, true);
    dv.setUint32(CFG_MAX_DISCARD_SEG, MAX_SEGMENTS, true);
    dv.setUint32(CFG_DISCARD_SECTOR_ALIGNMENT, 1, true);
    dv.setUint32(CFG_MAX_WRITE_ZEROES_SECTORS, MAX_DISCARD_SECTORS, true);
    dv.setUint32(CFG_MAX_WRITE_ZEROES_SEG, MAX_SEGMENTS, true);
    dv.setUint8(CFG_WRITE_ZEROES_MAY_UNMAP, 0);
  }

  configRead(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > CFG_SIZE) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[offset + i];
    return v >>> 0;
  }

  configWrite(): void {
    // writeback (the only writable field) is not offered: config space is read-only.
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.notify(0);
  }

  reset(): void {
    this.ctx = null;
  }

  notify(q: number): void {
    const ctx = this.ctx;
    if (!ctx || q !== 0) return;
    const queue = ctx.queues[0];
    let served = 0;
    while (!ctx.broken) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') {
        ctx.fail(r.error);
        return;
      }
      const chain = r.chain;
      const parsed = parseRequest(ctx.mem, chain, this.limits);
      if (!parsed.ok) {
        ctx.fail(parsed.error);
        return;
      }
      const written = this.serve(ctx, parsed.req, chain);
      // Status byte: the last byte of the writable space.
      scatter(ctx.mem, chain.writable, chain.writeLen - 1, Uint8Array.of(written.status));
      queue.pushUsed(chain.head, written.bytes + 1);
      served++;
    }
    if (served) ctx.usedBuffers(0);
  }

  /** Carry out one request; returns the status and the data bytes written into the chain. */
  private serve(ctx: VirtioContext, req: BlkRequest, chain: { readable: { off: number; len: number }[]; writable: { off: number; len: number }[] }): { status: number; bytes: number } {
    const b = this.backend;
    const mem = ctx.mem;
    const ioerr = { status: VIRTIO_BLK_S_IOERR, bytes: 0 };
    try {
      switch (req.type) {
        case 'in': {
          let pos = req.sector * SECTOR_SIZE;
          for (const s of slices(mem, chain.writable, 0, req.len, true)) {
            b.read(pos, s);
            pos += s.length;
          }
          return { status: VIRTIO_BLK_S_OK, bytes: req.len };
        }
        case 'out': {
          if (b.readOnly) return ioerr;
          let pos = req.sector * SECTOR_SIZE;
          for (const s of slices(mem, chain.readable, 16, req.len)) {
            b.write(pos, s);
            pos += s.length;
          }
          return { status: VIRTIO_BLK_S_OK, bytes: 0 };
        }
        case 'flush':
          b.flush();
          return { status: VIRTIO_BLK_S_OK, bytes: 0 };
        case 'get-id':
          scatter(mem, chain.writable, 0, this.serial.subarray(0, req.len));
          return { status: VIRTIO_BLK_S_OK, bytes: req.len };
        case 'discard':
          if (b.readOnly) return ioerr;
          for (const s of req.segments) b.discard(s.sector * SECTOR_SIZE, s.sectors * SECTOR_SIZE);
          return { status: VIRTIO_BLK_S_OK, bytes: 0 };
        case 'write-zeroes':
          if (b.readOnly) return ioerr;
          for (const s of req.segments) b.writeZeroes(s.sector * SECTOR_SIZE, s.sectors * SECTOR_SIZE);
          return { status: VIRTIO_BLK_S_OK, bytes: 0 };
        case 'reject':
          return { status: req.status, bytes: 0 };
      }
    } catch {
      return ioerr;
    }
  }
}

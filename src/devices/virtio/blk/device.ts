// virtio-blk (device id 2): one request queue served synchronously from a
// BlockBackend. Data moves straight between guest RAM and the backend.
//
// Read-only disks (VIRTIO_BLK_F_RO) answer writes, discards and write-zeroes with
// VIRTIO_BLK_S_IOERR, as QEMU does; Linux never sends them since it marks the
// disk read-only from the feature bit. A backend that throws (host I/O error)
// also yields IOERR: host errors never reach the guest loop.
//
// An optional rate limiter (../../rate-limiter.ts) paces requests: one that does
// not fit the budget is held back, and the device takes nothing more from the
// queue until the machine calls poll() at nextDeadline(), when the tokens are
// there. To the guest this looks like a slow disk; nothing spins meanwhile.

import { isRecord, type AccessSize, type RestoreResult } from '../../device.js';
import { type BlockBackend, readInto, writeFrom } from '../../../storage/backend.js';
import { type VirtioContext, type VirtioDevice, bit } from '../mmio.js';
import { type Chain, scatter, slices } from '../queue.js';
import { RateLimiter, type RateLimits, type RateLimiterCounters } from '../../rate-limiter.js';
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

/**
 * Room for a 1 MiB request of 4 KiB pages that are nowhere neighbours in RAM
 * (256 data segments, a header and a status byte): with a 256-entry queue
 * seg_max was 254 and Linux cut every such request in two.
 */
export const QUEUE_SIZE = 1024;
const MAX_DISCARD_SECTORS = 0x40_0000; // 2 GiB per segment
const MAX_SEGMENTS = 1;

export interface BlkOptions {
  backend: BlockBackend;
  /** Up to 20 bytes reported by GET_ID. */
  serial?: string;
  /** I/O limits (none by default). */
  limits?: RateLimits;
  /** Clock for the limiter in ms (the machine's device clock); required for limits to refill. */
  clock?: () => number;
}

/** Per-disk counters for monitoring: what the guest asked for and how long it was held back. */
export interface BlkStats {
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
  /** Flush, discard and write-zeroes requests. */
  otherOps: number;
  /** Times a request had to wait for tokens, and the total wait (device clock ms). */
  throttledEvents: number;
  throttledMs: number;
  /** A request is waiting for tokens right now. */
  throttled: boolean;
  /** The limits in force (null buckets: unlimited). */
  limits: RateLimits;
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
  private readonly limiter: RateLimiter;
  private readonly clock: () => number;
  /** A request taken from the queue that waits for tokens (it is served before anything else). */
  private held: { chain: Chain; req: BlkRequest } | null = null;
  private readonly counts = { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0, otherOps: 0 };

  constructor(opts: BlkOptions, name = 'virtio-blk') {
    this.name = name;
    this.backend = opts.backend;
    this.clock = opts.clock ?? (() => 0);
    this.limiter = new RateLimiter(this.clock, opts.limits ?? {});
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
    this.held = null;
    this.limiter.cancelWaiting();
  }

  /** Change the limits on a running disk (RangeError for a bad configuration). */
  setLimits(limits: RateLimits): void {
    this.limiter.update(limits);
  }

  /** Device clock time (ms) when a held request can go, or null when nothing waits. */
  nextDeadline(): number | null {
    if (!this.held || !this.ctx) return null;
    return this.clock() + this.limiter.nextRefillDelay();
  }

  /** Called by the machine once nextDeadline() has passed: serve what waited. */
  poll(): void {
    if (this.held) this.notify(0);
  }

  stats(): BlkStats {
    const l = this.limiter.stats();
    return { ...this.counts, throttledEvents: l.throttledEvents, throttledMs: l.throttledMs, throttled: this.held !== null, limits: this.limiter.config };
  }

  save(): unknown {
    return {
      capacity: this.limits.capacity,
      readOnly: this.backend.readOnly,
      held: this.held ? this.held.chain.head : null,
      counts: { ...this.counts },
      limiter: this.limiter.save(),
    };
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    const fail = (why: string): RestoreResult => ({ ok: false, error: `${this.name}: ${why}` });
    if (!isRecord(state)) return fail('state is not an object');
    if (state.capacity !== this.limits.capacity) {
      return fail(`the disk has ${this.limits.capacity} sectors but had ${String(state.capacity)} when the snapshot was taken`);
    }
    if (state.readOnly !== this.backend.readOnly) return fail('the disk was attached with a different read-only setting');
    const c = state.counts;
    const keys = Object.keys(this.counts) as (keyof typeof this.counts)[];
    if (!isRecord(c) || !keys.every((k) => typeof c[k] === 'number' && Number.isSafeInteger(c[k]) && (c[k] as number) >= 0)) {
      return fail('counts must be non-negative integers');
    }
    let held: { chain: Chain; req: BlkRequest } | null = null;
    if (state.held !== null) {
      if (!ctx) return fail('a held request on a device that is not live');
      if (typeof state.held !== 'number') return fail('held must be a chain head or null');
      const walked = ctx.queues[0].chainAt(state.held);
      if (!walked.ok) return fail(`held request: ${walked.error}`);
      const parsed = parseRequest(ctx.mem, walked.chain, this.limits);
      if (!parsed.ok) return fail(`held request: ${parsed.error}`);
      held = { chain: walked.chain, req: parsed.req };
    }
    const bad = this.limiter.restore(state.limiter);
    if (bad) return fail(bad);
    for (const k of keys) this.counts[k] = c[k] as number;
    this.held = held;
    this.ctx = ctx;
    return { ok: true };
  }

  /** Bytes and operations a request costs against the limits. */
  private static cost(req: BlkRequest): { bytes: number; ops: number } {
    switch (req.type) {
      case 'in':
      case 'out':
        return { bytes: req.len, ops: 1 };
      case 'flush':
      case 'discard':
      case 'write-zeroes':
        return { bytes: 0, ops: 1 };
      default:
        return { bytes: 0, ops: 0 };
    }
  }

  notify(q: number): void {
    const ctx = this.ctx;
    if (!ctx || q !== 0) return;
    const queue = ctx.queues[0];
    let served = 0;
    while (!ctx.broken) {
      if (this.held) {
        // Still waiting: the rest stays in the avail ring until poll() finds tokens.
        const { chain, req } = this.held;
        const c = VirtioBlk.cost(req);
        if (!this.limiter.tryConsume(c.bytes, c.ops)) break;
        this.held = null;
        this.complete(ctx, req, chain);
        served++;
        continue;
      }
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
      if (this.limiter.active) {
        const c = VirtioBlk.cost(parsed.req);
        if (!this.limiter.tryConsume(c.bytes, c.ops)) {
          this.held = { chain, req: parsed.req };
          break;
        }
      }
      this.complete(ctx, parsed.req, chain);
      served++;
    }
    if (served) ctx.usedBuffers(0);
  }

  /** Serve one request, count it and hand the chain back. */
  private complete(ctx: VirtioContext, req: BlkRequest, chain: Chain): void {
    const written = this.serve(ctx, req, chain);
    if (written.status === VIRTIO_BLK_S_OK) {
      if (req.type === 'in') {
        this.counts.readBytes += req.len;
        this.counts.readOps++;
      } else if (req.type === 'out') {
        this.counts.writeBytes += req.len;
        this.counts.writeOps++;
      } else if (req.type !== 'get-id' && req.type !== 'reject') this.counts.otherOps++;
    }
    // Status byte: the last byte of the writable space.
    scatter(ctx.mem, chain.writable, chain.writeLen - 1, Uint8Array.of(written.status));
    ctx.queues[0].pushUsed(chain.head, written.bytes + 1);
  }

  /** Carry out one request; returns the status and the data bytes written into the chain. */
  private serve(ctx: VirtioContext, req: BlkRequest, chain: { readable: { off: number; len: number }[]; writable: { off: number; len: number }[] }): { status: number; bytes: number } {
    const b = this.backend;
    const mem = ctx.mem;
    const ioerr = { status: VIRTIO_BLK_S_IOERR, bytes: 0 };
    try {
      switch (req.type) {
        case 'in': {
          // Straight from the host file into guest RAM: one vectored read for the request.
          readInto(b, req.sector * SECTOR_SIZE, slices(mem, chain.writable, 0, req.len, true));
          return { status: VIRTIO_BLK_S_OK, bytes: req.len };
        }
        case 'out': {
          if (b.readOnly) return ioerr;
          writeFrom(b, req.sector * SECTOR_SIZE, slices(mem, chain.readable, 16, req.len));
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

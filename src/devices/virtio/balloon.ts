// virtio-balloon (device id 5, virtio 1.2 section 5.5): the host sets a target
// (num_pages, 4 KiB pages the guest should hand over), the guest's driver
// allocates that many pages and sends their frame numbers on the inflate queue,
// gives them back through the deflate queue, and writes how many it holds into
// `actual`. With VIRTIO_BALLOON_F_STATS_VQ the driver reports its memory
// statistics; with VIRTIO_BALLOON_F_REPORTING it reports ranges of free pages.
//
// Giving memory back: guest RAM is one WebAssembly.Memory, and nothing in
// JavaScript can return part of it to the operating system. So the host passes
// a `release` hook (madvise(MADV_DONTNEED) through a small native addon, see
// src/vm/host-memory.ts): pages the guest inflates or reports are handed to it
// and really leave the host's resident set; they read as zero afterwards.
// Without the hook the device zeroes such pages when they hold data (a page
// never touched is left alone, so reading it does not make the host commit it)
// and the memory stays with the VM until it restarts with less RAM.
//
// No Node APIs.

import { isRecord, type AccessSize, type RestoreResult } from '../device.js';
import { bitmapToRuns, runsToBitmap } from '../persist.js';
import { type VirtioContext, type VirtioDevice, bit } from './mmio.js';
import { type Chain, gather } from './queue.js';
import { ramRange } from './memory.js';

export const VIRTIO_ID_BALLOON = 5;

// ---- Feature bits ----
export const VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
export const VIRTIO_BALLOON_F_STATS_VQ = 1;
export const VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
export const VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
export const VIRTIO_BALLOON_F_PAGE_POISON = 4;
export const VIRTIO_BALLOON_F_REPORTING = 5;

// ---- Config space ----
export const CFG_NUM_PAGES = 0; // u32, set by the device (target)
export const CFG_ACTUAL = 4; // u32, written by the driver
const CFG_SIZE = 16; // + free_page_hint_cmd_id, poison_val (features not offered: read as 0)

/** Balloon pages are always 4 KiB, whatever the guest's page size. */
export const BALLOON_PAGE = 4096;
const QUEUE_SIZE = 128;
const STAT_ENTRY = 10; // le16 tag, le64 value, packed
/** Largest page-number buffer and stats buffer accepted (Linux sends 1 KiB and ~160 bytes): a bound on what a driver makes us copy. */
const MAX_PFN_BYTES = 64 * 1024;
const MAX_STATS_BYTES = 4096;

/** Statistic tags (virtio 1.2 5.5.6.3, plus the ones newer Linux drivers send). */
export const STAT_NAMES: Record<number, string> = {
  0: 'swapIn', 1: 'swapOut', 2: 'majorFaults', 3: 'minorFaults', 4: 'memFree', 5: 'memTotal',
  6: 'memAvailable', 7: 'diskCaches', 8: 'hugetlbAllocations', 9: 'hugetlbFailures',
  10: 'oomKills', 11: 'allocStalls', 12: 'asyncScans', 13: 'directScans', 14: 'asyncReclaims', 15: 'directReclaims',
};

export interface BalloonOptions {
  /** Initial target in 4 KiB pages (default 0: the balloon starts empty). */
  targetPages?: number;
  /** Ask the guest for fresh statistics this often (device clock ms); 0 = only when asked. Default 2000. */
  statsIntervalMs?: number;
  /** Device clock in ms (needed for the statistics interval). */
  clock?: () => number;
  /** Offer free page reporting (default true). */
  reporting?: boolean;
  /**
   * Return [off, off + len) of `ram` (whole 4 KiB pages) to the host OS; the
   * pages must read as zero afterwards. Returns the bytes that were resident.
   */
  release?: (ram: Uint8Array, off: number, len: number) => number;
}

/** What the host can see of the balloon. */
export interface BalloonStats {
  /** Host's target and the guest's acknowledged size, in 4 KiB pages and MiB. */
  targetPages: number;
  actualPages: number;
  targetMiB: number;
  actualMiB: number;
  /** Pages the device currently counts as inside the balloon (its own bookkeeping of inflate/deflate). */
  inflatedPages: number;
  /** Totals since boot. */
  pagesInflated: number;
  pagesDeflated: number;
  /** Free page reporting: ranges and bytes the guest reported. */
  reports: number;
  reportedBytes: number;
  /** Bytes of guest RAM the device zeroed (inflated or reported pages that held data). */
  scrubbedBytes: number;
  /** Resident bytes returned to the host OS through the release hook (0 without one). */
  releasedToHostBytes: number;
  /** The guest's last statistics by name (bytes for memory sizes), and when they came (device clock ms), or null. */
  guest: Record<string, number> | null;
  guestStatsAtMs: number | null;
  /** Features the driver accepted. */
  statsQueue: boolean;
  freePageReporting: boolean;
}

type Role = 'inflate' | 'deflate' | 'stats' | 'report' | 'none';

export class VirtioBalloon implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BALLOON;
  readonly name = 'virtio-balloon';
  readonly features: bigint;
  /**
   * inflateq, deflateq, statsq, then two more: Linux numbers the queues it uses
   * consecutively (the reporting queue comes right after statsq when free page
   * hinting is not negotiated), while the spec's table puts reporting_vq at 4.
   * Offering five queues and deciding roles from the negotiated features fits both.
   */
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE];
  private readonly config = new Uint8Array(CFG_SIZE);
  private readonly cfgView = new DataView(this.config.buffer);
  private ctx: VirtioContext | null = null;
  private readonly clock: () => number;
  private readonly statsIntervalMs: number;
  /** One bit per 4 KiB page of guest RAM: in the balloon. Allocated at activation. */
  private inBalloon: Uint8Array | null = null;
  private words: Int32Array | null = null;
  private inflatedPages = 0;
  private totals = { pagesInflated: 0, pagesDeflated: 0, reports: 0, reportedBytes: 0, scrubbedBytes: 0, releasedToHostBytes: 0 };
  private readonly release: BalloonOptions['release'];
  /** The stats buffer the driver gave us; returning it asks for fresh numbers. */
  private statsHeld: Chain | null = null;
  private statsAskedAt = 0;
  private guestStats: Record<string, number> | null = null;
  private guestStatsAt: number | null = null;

  constructor(opts: BalloonOptions = {}) {
    this.clock = opts.clock ?? (() => 0);
    this.statsIntervalMs = opts.statsIntervalMs ?? 2000;
    this.release = opts.release;
    let f = bit(VIRTIO_BALLOON_F_MUST_TELL_HOST) | bit(VIRTIO_BALLOON_F_STATS_VQ);
    if (opts.reporting ?? true) f |= bit(VIRTIO_BALLOON_F_REPORTING);
    this.features = f;
    this.setTargetPages(opts.targetPages ?? 0);
  }

  get targetPages(): number {
    return this.cfgView.getUint32(CFG_NUM_PAGES, true);
  }

  get actualPages(): number {
    return this.cfgView.getUint32(CFG_ACTUAL, true);
  }

  /** Set the target (4 KiB pages) and tell the driver with a config-change interrupt. */
  setTargetPages(pages: number): void {
    if (!Number.isInteger(pages) || pages < 0 || pages > 0xffff_ffff) throw new RangeError(`balloon target ${pages} pages is out of range`);
    this.cfgView.setUint32(CFG_NUM_PAGES, pages, true);
    this.ctx?.configChanged();
  }

  configRead(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > CFG_SIZE) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.config[offset + i];
    return v >>> 0;
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    // Only `actual` belongs to the driver.
    if (offset < CFG_ACTUAL || offset + size > CFG_ACTUAL + 4) return;
    for (let i = 0; i < size; i++) this.config[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    const pages = Math.ceil(ctx.mem.ram.length / BALLOON_PAGE);
    this.inBalloon = new Uint8Array(Math.ceil(pages / 8));
    this.inflatedPages = 0;
    this.words = ctx.mem.ram.byteOffset % 4 === 0 ? new Int32Array(ctx.mem.ram.buffer, ctx.mem.ram.byteOffset, ctx.mem.ram.byteLength >> 2) : null;
    for (let q = 0; q < this.queueSizes.length; q++) this.notify(q);
  }

  reset(): void {
    this.ctx = null;
    this.statsHeld = null;
    this.inBalloon = null;
    this.inflatedPages = 0;
    // The driver starts over with an empty balloon.
    this.cfgView.setUint32(CFG_ACTUAL, 0, true);
  }

  /** Target and actual, the pages in the balloon (bitmap as runs), totals and the held statistics buffer. */
  save(): unknown {
    const pages = this.inBalloon ? this.inBalloon.length * 8 : 0;
    return {
      targetPages: this.targetPages,
      actualPages: this.actualPages,
      inBalloon: this.inBalloon ? bitmapToRuns(this.inBalloon, pages) : null,
      totals: { ...this.totals },
      statsHeld: this.statsHeld ? this.statsHeld.head : null,
      statsAskedAt: this.statsAskedAt,
      guestStats: this.guestStats ? { ...this.guestStats } : null,
      guestStatsAt: this.guestStatsAt,
    };
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    const fail = (why: string): RestoreResult => ({ ok: false, error: `${this.name}: ${why}` });
    if (!isRecord(state)) return fail('state is not an object');
    const u32 = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
    if (!u32(state.targetPages) || !u32(state.actualPages)) return fail('targetPages and actualPages must be 32-bit integers');
    let bitmap: { bits: Uint8Array; set: number } | null = null;
    if (state.inBalloon !== null) {
      if (!ctx) return fail('balloon pages on a device that is not live');
      const pages = Math.ceil(ctx.mem.ram.length / BALLOON_PAGE);
      bitmap = runsToBitmap(state.inBalloon, pages);
      if (!bitmap) return fail('inBalloon must be sorted, disjoint [start, length] runs inside guest RAM');
    } else if (ctx) return fail('a live balloon without its page bitmap');
    const t = state.totals;
    const keys = Object.keys(this.totals) as (keyof typeof this.totals)[];
    if (!isRecord(t) || !keys.every((k) => typeof t[k] === 'number' && Number.isSafeInteger(t[k]) && (t[k] as number) >= 0)) {
      return fail('totals must be non-negative integers');
    }
    const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
    if (!num(state.statsAskedAt) || !(state.guestStatsAt === null || num(state.guestStatsAt))) return fail('statistics times must be numbers');
    const gs = state.guestStats;
    if (gs !== null && (!isRecord(gs) || !Object.values(gs).every(num))) return fail('guestStats must map names to numbers');
    let held: Chain | null = null;
    if (state.statsHeld !== null) {
      if (!ctx || (ctx.features & bit(VIRTIO_BALLOON_F_STATS_VQ)) === 0n) return fail('a held statistics buffer without a statistics queue');
      if (typeof state.statsHeld !== 'number') return fail('statsHeld must be a chain head or null');
      const walked = ctx.queues[2].chainAt(state.statsHeld);
      if (!walked.ok) return fail(`held statistics buffer: ${walked.error}`);
      held = walked.chain;
    }
    this.cfgView.setUint32(CFG_NUM_PAGES, state.targetPages as number, true);
    this.cfgView.setUint32(CFG_ACTUAL, state.actualPages as number, true);
    this.ctx = ctx;
    this.inBalloon = bitmap ? bitmap.bits : null;
    this.inflatedPages = bitmap ? bitmap.set : 0;
    if (ctx) this.words = ctx.mem.ram.byteOffset % 4 === 0 ? new Int32Array(ctx.mem.ram.buffer, ctx.mem.ram.byteOffset, ctx.mem.ram.byteLength >> 2) : null;
    for (const k of keys) this.totals[k] = t[k] as number;
    this.statsHeld = held;
    this.statsAskedAt = state.statsAskedAt as number;
    this.guestStats = gs ? { ...(gs as Record<string, number>) } : null;
    this.guestStatsAt = state.guestStatsAt as number | null;
    return { ok: true };
  }

  private role(q: number): Role {
    const f = this.ctx?.features ?? 0n;
    const stats = (f & bit(VIRTIO_BALLOON_F_STATS_VQ)) !== 0n;
    const report = (f & bit(VIRTIO_BALLOON_F_REPORTING)) !== 0n;
    if (q === 0) return 'inflate';
    if (q === 1) return 'deflate';
    if (q === 2) return stats ? 'stats' : report ? 'report' : 'none';
    return report ? 'report' : 'none'; // 3 (numbered consecutively) or 4 (the spec's fixed number)
  }

  notify(q: number): void {
    const ctx = this.ctx;
    if (!ctx || q >= this.queueSizes.length) return;
    const role = this.role(q);
    if (role === 'none') return;
    const queue = ctx.queues[q];
    let returned = 0;
    while (!ctx.broken) {
      if (role === 'stats' && this.statsHeld) break; // one stats buffer at a time
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      const chain = r.chain;
      if (role === 'stats') {
        if (chain.readLen > MAX_STATS_BYTES) return ctx.fail(`stats buffer of ${chain.readLen} bytes (at most ${MAX_STATS_BYTES})`);
        this.readStats(ctx, chain);
        this.statsHeld = chain; // kept until we want new numbers
        continue;
      }
      if (role === 'report') {
        if (chain.readLen > 0) return ctx.fail('free page report has a device-readable buffer');
        for (const b of chain.writable) {
          this.scrubRange(b.off, b.len);
          this.totals.reports++;
          this.totals.reportedBytes += b.len;
        }
      } else {
        if (chain.writeLen > 0) return ctx.fail(`${role} buffer has a device-writable part`);
        if (chain.readLen > MAX_PFN_BYTES) return ctx.fail(`${role} buffer of ${chain.readLen} bytes (at most ${MAX_PFN_BYTES})`);
        this.pages(ctx, chain, role === 'inflate');
      }
      queue.pushUsed(chain.head, 0);
      returned++;
    }
    if (returned) ctx.usedBuffers(q);
  }

  /** Inflate or deflate the pages whose frame numbers (le32) the chain carries. */
  private pages(ctx: VirtioContext, chain: Chain, inflate: boolean): void {
    const raw = new Uint8Array(chain.readLen - (chain.readLen % 4));
    gather(ctx.mem, chain.readable, 0, raw);
    const dv = new DataView(raw.buffer);
    const bitmap = this.inBalloon!;
    // Newly inflated pages are given up in runs of consecutive pages (one release call each).
    let runOff = -1;
    let runLen = 0;
    for (let i = 0; i < raw.length; i += 4) {
      const pfn = dv.getUint32(i, true);
      // A frame outside RAM is the driver's mistake; it changes nothing, so it is skipped.
      const off = ramRange(ctx.mem, pfn * BALLOON_PAGE, BALLOON_PAGE);
      if (off < 0) continue;
      const page = off / BALLOON_PAGE;
      const has = (bitmap[page >> 3] & (1 << (page & 7))) !== 0;
      if (inflate) {
        this.totals.pagesInflated++;
        if (has) continue;
        bitmap[page >> 3] |= 1 << (page & 7);
        this.inflatedPages++;
        if (runOff >= 0 && off === runOff + runLen) {
          runLen += BALLOON_PAGE;
        } else {
          if (runOff >= 0) this.scrubRange(runOff, runLen);
          runOff = off;
          runLen = BALLOON_PAGE;
        }
      } else {
        this.totals.pagesDeflated++;
        if (!has) continue;
        bitmap[page >> 3] &= ~(1 << (page & 7));
        this.inflatedPages--;
      }
    }
    if (runOff >= 0) this.scrubRange(runOff, runLen);
  }

  /**
   * Give up the pages of [off, off + len): to the host through the release hook,
   * else by zeroing the ones that hold data (untouched, all-zero pages are only read).
   */
  private scrubRange(off: number, len: number): void {
    const ctx = this.ctx!;
    const ram = ctx.mem.ram;
    const end = Math.min(ram.length, off + len);
    if (this.release && off % BALLOON_PAGE === 0 && end > off) {
      const whole = end - ((end - off) % BALLOON_PAGE);
      const freed = this.release(ram, off, whole - off);
      this.totals.releasedToHostBytes += freed;
      this.totals.scrubbedBytes += freed;
      // The contents changed (to zero): translated code on these pages is stale.
      ctx.mem.noteWrite?.(off, whole - off);
      off = whole;
      if (off >= end) return;
    }
    for (let p = off; p < end; p += BALLOON_PAGE) {
      const n = Math.min(BALLOON_PAGE, end - p);
      if (this.isZero(p, n)) continue;
      ram.fill(0, p, p + n);
      ctx.mem.noteWrite?.(p, n);
      this.totals.scrubbedBytes += n;
    }
  }

  private isZero(off: number, len: number): boolean {
    const w = this.words;
    if (w && off % 4 === 0 && len % 4 === 0) {
      for (let i = off >> 2, e = (off + len) >> 2; i < e; i++) if (w[i] !== 0) return false;
      return true;
    }
    const ram = this.ctx!.mem.ram;
    for (let i = off; i < off + len; i++) if (ram[i] !== 0) return false;
    return true;
  }

  private readStats(ctx: VirtioContext, chain: Chain): void {
    const n = Math.floor(chain.readLen / STAT_ENTRY);
    const raw = new Uint8Array(n * STAT_ENTRY);
    gather(ctx.mem, chain.readable, 0, raw);
    const dv = new DataView(raw.buffer);
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const tag = dv.getUint16(i * STAT_ENTRY, true);
      const val = dv.getBigUint64(i * STAT_ENTRY + 2, true);
      out[STAT_NAMES[tag] ?? `tag${tag}`] = Number(val);
    }
    // The driver sends its first buffer at probe time before it has numbers (all zero); keep it anyway.
    this.guestStats = out;
    this.guestStatsAt = this.clock();
  }

  /** Ask the driver for fresh statistics (it answers by sending the buffer again). */
  requestStats(): void {
    const ctx = this.ctx;
    const held = this.statsHeld;
    if (!ctx || !held || ctx.broken) return;
    this.statsHeld = null;
    this.statsAskedAt = this.clock();
    ctx.queues[2].pushUsed(held.head, 0);
    ctx.usedBuffers(2);
  }

  nextDeadline(): number | null {
    if (!this.statsHeld || this.statsIntervalMs <= 0) return null;
    return this.statsAskedAt + this.statsIntervalMs;
  }

  poll(): void {
    if (this.statsHeld && this.statsIntervalMs > 0 && this.clock() >= this.statsAskedAt + this.statsIntervalMs) this.requestStats();
  }

  stats(): BalloonStats {
    const f = this.ctx?.features ?? 0n;
    const mib = (pages: number) => (pages * BALLOON_PAGE) / (1024 * 1024);
    return {
      targetPages: this.targetPages,
      actualPages: this.actualPages,
      targetMiB: mib(this.targetPages),
      actualMiB: mib(this.actualPages),
      inflatedPages: this.inflatedPages,
      ...this.totals,
      guest: this.guestStats ? { ...this.guestStats } : null,
      guestStatsAtMs: this.guestStatsAt,
      statsQueue: (f & bit(VIRTIO_BALLOON_F_STATS_VQ)) !== 0n,
      freePageReporting: (f & bit(VIRTIO_BALLOON_F_REPORTING)) !== 0n,
    };
  }
}

// virtio-net (device id 1, virtio 1.2 section 5.1): one receive and one transmit
// queue, MAC and link status in config space, mergeable receive buffers, and a
// control queue that only serves the guest's acknowledgement of an
// announcement (VIRTIO_NET_F_GUEST_ANNOUNCE, after a live migration). Frames
// leave and arrive through a NicPort (the worker backs it with shared rings to a
// backend on the owner's thread). Guest-driven frames are validated here: a
// malformed or oversized frame is dropped and counted; only a broken descriptor
// chain (the transport's business) makes the device need a reset.

import { isIntArray, isRecord, type AccessSize, type RestoreResult } from '../device.js';
import type { VirtioContext, VirtioDevice } from './mmio.js';
import { bit } from './mmio.js';
import { gather, scatter, slices, type BufRange, type Chain } from './queue.js';
import { parseNetHdr, transmitWithOffloads, VIRTIO_NET_HDR_F_DATA_VALID } from './net-offload.js';
import { RateLimiter, type RateLimits, type RateLimiterCounters } from '../rate-limiter.js';

export const VIRTIO_ID_NET = 1;

// Feature bits.
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;

// Config space: mac[6], status u16, max_virtqueue_pairs u16, mtu u16.
const CFG_MAC = 0;
const CFG_STATUS = 6;
const CFG_MAX_PAIRS = 8;
const CFG_MTU = 10;
const CFG_SIZE = 12;
export const VIRTIO_NET_S_LINK_UP = 1;
/** Status bit: the guest is asked to announce itself (gratuitous ARP, IPv6 NA) and to acknowledge. */
export const VIRTIO_NET_S_ANNOUNCE = 2;

// Control queue requests: {class u8, command u8, data...} then an ack byte the device writes.
export const VIRTIO_NET_CTRL_ANNOUNCE = 3;
export const VIRTIO_NET_CTRL_ANNOUNCE_ACK = 0;
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;

/** struct virtio_net_hdr with num_buffers (always present with VERSION_1). */
export const NET_HDR_SIZE = 12;
const HDR_NUM_BUFFERS = 10;
const GSO_NONE = 0;

const RX = 0;
const TX = 1;
const CTRL = 2;
const QUEUE_SIZE = 256;
const CTRL_QUEUE_SIZE = 64;
export const MTU = 1500;
/** Largest Ethernet frame accepted from the guest: MTU + header + one VLAN tag. */
export const MAX_FRAME = MTU + 14 + 4;
const MIN_FRAME = 14;
/** Largest frame the guest may hand over for segmentation (an IPv4 packet of 64 KiB). */
const MAX_TSO_FRAME = 65535 + 14 + 4;
/** Frames delivered per poll before the run loop gets control back. */
const RX_BATCH = 64;

/** The device's view of its link to the host. */
export interface NicPort {
  /** Queue a frame from the guest; false if there was no room (the frame is dropped). */
  send(frame: readonly Uint8Array[], length: number): boolean;
  /** The next frame for the guest, without taking it; null if none. */
  peek(): Uint8Array | null;
  /** Take the frame peek() returned. */
  consume(): void;
}

/** What the device counts (readable by the owner through the port's shared header). */
export interface NicDeviceCounters {
  txFrames: number;
  txBytes: number;
  txDropped: number;
  rxFrames: number;
  rxBytes: number;
  rxDropped: number;
}

/** Token-bucket limits per direction (tx: guest to host, rx: host to guest); bandwidth counts frame bytes, ops count frames. */
export interface NicLimits {
  tx?: RateLimits;
  rx?: RateLimits;
}

export interface VirtioNetOptions {
  mac: Uint8Array;
  port: NicPort;
  /** Rate limits; they need `clock`. */
  limits?: NicLimits;
  /** Device clock in ms (guest time in deterministic runs). */
  clock?: () => number;
  /** Called with counter deltas; defaults to keeping them on the device. */
  count?: (c: keyof NicDeviceCounters, n: number) => void;
  log?: (message: string) => void;
  /**
   * A clone's NIC: restore() keeps this MAC rather than requiring the saved one.
   * The guest driver reads the MAC at probe only, so it sees the new one when it
   * probes again (a driver rebind); the link blip tells it something changed.
   */
  newMac?: boolean;
  /**
   * Serve the transmit queue at the end of the machine's slice (flushTransmit(),
   * poll()) rather than inside the driver's notification. The driver then finds
   * its earlier frames still queued, so with event indexes it neither notifies
   * again nor asks for an interrupt per frame: one notification and at most one
   * interrupt per slice's batch. The frames leave the VM at the slice's end
   * either way (the host side is woken once per slice), so they are not later.
   */
  deferTransmit?: boolean;
}

export class VirtioNet implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_NET;
  readonly name: string;
  // Checksum and TCP segmentation offloads: the guest then sends 64 KiB at a time and
  // skips checksumming (see net-offload.ts), most of its per-byte work.
  readonly features =
    bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MRG_RXBUF) | bit(VIRTIO_NET_F_MTU) |
    bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_HOST_TSO4) |
    bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_GUEST_ANNOUNCE);
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE, CTRL_QUEUE_SIZE];
  /** Announcements the guest acknowledged (each one means it sent its gratuitous ARP). */
  announcementsAcked = 0;
  readonly counters: NicDeviceCounters = { txFrames: 0, txBytes: 0, txDropped: 0, rxFrames: 0, rxBytes: 0, rxDropped: 0 };
  private ctx: VirtioContext | null = null;
  private readonly mac: Uint8Array;
  private readonly newMac: boolean;
  private readonly port: NicPort;
  private readonly count: (c: keyof NicDeviceCounters, n: number) => void;
  private readonly hdr = new Uint8Array(NET_HDR_SIZE);
  private mergeable = false;
  private guestCsum = false;
  private maxTx = MAX_FRAME;
  private txScratch = new Uint8Array(0);
  /** Frames the guest handed over for segmentation or checksumming (--stats: is the offload used?). */
  private readonly offloads = { gsoFrames: 0, gsoBytes: 0, csumFrames: 0, largestTx: 0 };
  private readonly clock: () => number;
  private readonly txLimiter: RateLimiter;
  private readonly rxLimiter: RateLimiter;
  /** A transmit chain taken from the queue but not yet paid for by the tx limiter. */
  private heldTx: Chain | null = null;
  private readonly deferTransmit: boolean;
  /**
   * The link is shown down until the guest reads the status once (bounceLink):
   * the read is the only acknowledgement a driver gives, so the blip lasts
   * exactly one look, however slow the guest is.
   */
  private linkDown = false;
  /** VIRTIO_NET_S_ANNOUNCE is shown until the driver acknowledges it on the control queue. */
  private announcing = false;

  constructor(opts: VirtioNetOptions, name = 'virtio-net') {
    if (opts.mac.length !== 6) throw new Error('virtio-net: a MAC address has 6 bytes');
    this.mac = opts.mac.slice();
    this.newMac = opts.newMac === true;
    this.deferTransmit = opts.deferTransmit === true;
    this.port = opts.port;
    this.name = name;
    this.count = opts.count ?? ((c, n) => (this.counters[c] += n));
    this.clock = opts.clock ?? (() => 0);
    this.txLimiter = new RateLimiter(this.clock, opts.limits?.tx ?? {});
    this.rxLimiter = new RateLimiter(this.clock, opts.limits?.rx ?? {});
  }

  statsText(): string {
    const o = this.offloads;
    return `${o.gsoFrames} segmentation frames (${(o.gsoBytes / 1048576).toFixed(1)} MiB), ${o.csumFrames} checksum-only, largest frame ${o.largestTx} bytes`;
  }

  /** Change the limits of a running NIC (a changed bucket starts full). */
  setLimits(limits: NicLimits): void {
    this.txLimiter.update(limits.tx ?? {});
    this.rxLimiter.update(limits.rx ?? {});
  }

  limiterStats(): { tx: RateLimiterCounters; rx: RateLimiterCounters } {
    return { tx: this.txLimiter.stats(), rx: this.rxLimiter.stats() };
  }

  /** When a throttled direction can go on (device clock ms), for the machine's idle wait. */
  nextDeadline(): number | null {
    const waits: number[] = [];
    if (this.heldTx) waits.push(this.txLimiter.nextRefillDelay());
    if (this.rxLimiter.active && this.rxLimiter.blocked && this.port.peek()) waits.push(this.rxLimiter.nextRefillDelay());
    return waits.length ? this.clock() + Math.min(...waits) : null;
  }

  configRead(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > CFG_SIZE) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.configByte(offset + i);
    return v >>> 0;
  }

  private configByte(o: number): number {
    if (o >= CFG_MAC && o < CFG_MAC + 6) return this.mac[o - CFG_MAC];
    if (o === CFG_STATUS) {
      if (!this.linkDown) return VIRTIO_NET_S_LINK_UP | (this.announcing ? VIRTIO_NET_S_ANNOUNCE : 0);
      // The guest saw the link down: bring it back up and tell it so.
      this.linkDown = false;
      this.ctx?.configChanged();
      return 0;
    }
    if (o === CFG_MAX_PAIRS) return 1;
    if (o === CFG_MTU) return MTU & 0xff;
    if (o === CFG_MTU + 1) return MTU >> 8;
    return 0;
  }

  /**
   * Take the link down and up again (a clone after a restore: the guest's
   * network stack sees a carrier change and can renew its address).
   * Does nothing before the driver is live.
   */
  bounceLink(): void {
    if (!this.ctx) return;
    this.linkDown = true;
    this.ctx.configChanged();
  }

  /** The control queue exists for a driver that negotiated it (snapshots from before it had one have two queues). */
  queuesUsed(features: bigint): number {
    return (features & bit(VIRTIO_NET_F_CTRL_VQ)) !== 0n ? 3 : 2;
  }

  /** Whether the driver took VIRTIO_NET_F_GUEST_ANNOUNCE (and so can be asked to announce itself). */
  get canAnnounce(): boolean {
    const f = this.ctx?.features ?? 0n;
    return (f & bit(VIRTIO_NET_F_GUEST_ANNOUNCE)) !== 0n && (f & bit(VIRTIO_NET_F_CTRL_VQ)) !== 0n;
  }

  /**
   * Ask the guest to announce itself where it is now (after a live migration):
   * VIRTIO_NET_S_ANNOUNCE and a config interrupt, as QEMU does; the driver sends
   * its gratuitous ARP and acknowledges on the control queue. A driver without
   * the feature gets a link blip instead. Does nothing before the driver is live.
   */
  announce(): void {
    if (!this.ctx) return;
    if (!this.canAnnounce) return this.bounceLink();
    this.announcing = true;
    this.ctx.configChanged();
  }

  /** The MAC is read-only here (VIRTIO_NET_F_CTRL_MAC_ADDR is not offered). */
  configWrite(): void {}

  activate(ctx: VirtioContext): void {
    this.takeContext(ctx);
    this.notify(TX);
    this.poll();
  }

  private takeContext(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.mergeable = (ctx.features & bit(VIRTIO_NET_F_MRG_RXBUF)) !== 0n;
    this.guestCsum = (ctx.features & bit(VIRTIO_NET_F_GUEST_CSUM)) !== 0n;
    this.maxTx = (ctx.features & bit(VIRTIO_NET_F_HOST_TSO4)) !== 0n ? MAX_TSO_FRAME : MAX_FRAME;
  }

  /**
   * The MAC, a transmit chain waiting for the limiter (by head), the limiters and
   * the device's own counters. Frames in the host rings are not device state:
   * a restored NIC starts with empty rings, as after a cable blip.
   */
  save(): unknown {
    return {
      mac: Array.from(this.mac),
      heldTx: this.heldTx ? this.heldTx.head : null,
      counters: { ...this.counters },
      linkDown: this.linkDown,
      announcing: this.announcing,
      tx: this.txLimiter.save(),
      rx: this.rxLimiter.save(),
    };
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    const fail = (why: string): RestoreResult => ({ ok: false, error: `${this.name}: ${why}` });
    if (!isRecord(state)) return fail('state is not an object');
    if (!isIntArray(state.mac, 6, 0, 0xff)) return fail('mac must be 6 bytes');
    if (!this.newMac && state.mac.some((b, i) => b !== this.mac[i])) return fail('the snapshot has a different MAC address');
    const c = state.counters;
    const keys = Object.keys(this.counters) as (keyof NicDeviceCounters)[];
    if (!isRecord(c) || !keys.every((k) => typeof c[k] === 'number' && Number.isSafeInteger(c[k]) && (c[k] as number) >= 0)) {
      return fail('counters must be non-negative integers');
    }
    // Absent in snapshots taken before links could bounce.
    if (state.linkDown !== undefined && typeof state.linkDown !== 'boolean') return fail('linkDown must be a boolean');
    if (state.announcing !== undefined && typeof state.announcing !== 'boolean') return fail('announcing must be a boolean');
    let held: Chain | null = null;
    if (state.heldTx !== null) {
      if (!ctx) return fail('a held frame on a device that is not live');
      if (typeof state.heldTx !== 'number') return fail('heldTx must be a chain head or null');
      const walked = ctx.queues[TX].chainAt(state.heldTx);
      if (!walked.ok) return fail(`held frame: ${walked.error}`);
      if (walked.chain.writeLen > 0) return fail('held frame has a device-writable part');
      held = walked.chain;
    }
    const saveTx = this.txLimiter.save();
    const bad = this.txLimiter.restore(state.tx);
    if (bad) return fail(`tx ${bad}`);
    const badRx = this.rxLimiter.restore(state.rx);
    if (badRx) {
      this.txLimiter.restore(saveTx);
      return fail(`rx ${badRx}`);
    }
    for (const k of keys) this.counters[k] = c[k] as number;
    this.heldTx = held;
    this.linkDown = state.linkDown === true;
    this.announcing = state.announcing === true;
    if (ctx) this.takeContext(ctx);
    else this.ctx = null;
    return { ok: true };
  }

  reset(): void {
    this.ctx = null;
    this.heldTx = null;
    this.linkDown = false;
    this.announcing = false;
    this.txLimiter.cancelWaiting();
    this.rxLimiter.cancelWaiting();
  }

  notify(q: number): void {
    if (q === TX) {
      if (!this.deferTransmit) this.transmit();
    } else if (q === RX) this.poll();
    else if (q === CTRL) this.control();
  }

  /** Serve the control queue: the announcement's acknowledgement; anything else is answered VIRTIO_NET_ERR. */
  private control(): void {
    const ctx = this.ctx;
    if (!ctx || (ctx.features & bit(VIRTIO_NET_F_CTRL_VQ)) === 0n) return;
    const queue = ctx.queues[CTRL];
    let done = 0;
    while (!ctx.broken) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      const c = r.chain;
      if (c.readLen < 2 || c.writeLen < 1) return ctx.fail('control request without its header or ack byte');
      const head = new Uint8Array(2);
      gather(ctx.mem, c.readable, 0, head);
      let ack = VIRTIO_NET_ERR;
      if (head[0] === VIRTIO_NET_CTRL_ANNOUNCE && head[1] === VIRTIO_NET_CTRL_ANNOUNCE_ACK && (ctx.features & bit(VIRTIO_NET_F_GUEST_ANNOUNCE)) !== 0n) {
        if (this.announcing) this.announcementsAcked++;
        this.announcing = false;
        ack = VIRTIO_NET_OK;
      }
      scatter(ctx.mem, c.writable, 0, Uint8Array.of(ack));
      queue.pushUsed(c.head, 1);
      done++;
    }
    if (done) ctx.usedBuffers(CTRL);
  }

  /**
   * Send what the guest queued since the last call (deferTransmit: the machine
   * calls this when a slice ends). Returns how many transmit buffers it gave back.
   */
  flushTransmit(): number {
    const ctx = this.ctx;
    if (!ctx || ctx.broken) return 0;
    if (!this.heldTx && !ctx.queues[TX].hasAvailable()) return 0;
    return this.transmit();
  }

  /** Take every frame the guest queued for sending (as far as the tx limiter allows); returns the buffers used. */
  private transmit(): number {
    const ctx = this.ctx;
    if (!ctx) return 0;
    const queue = ctx.queues[TX];
    let done = 0;
    while (!ctx.broken) {
      let c = this.heldTx;
      if (!c) {
        const r = queue.pop();
        if (r.kind === 'empty') break;
        if (r.kind === 'error') {
          ctx.fail(r.error);
          return done;
        }
        c = r.chain;
        if (c.writeLen > 0) {
          ctx.fail('transmit buffer has a device-writable part');
          return done;
        }
      }
      const frameLen = c.readLen - NET_HDR_SIZE;
      if (this.txLimiter.active && frameLen >= MIN_FRAME && frameLen <= this.maxTx && !this.txLimiter.tryConsume(frameLen, 1)) {
        this.heldTx = c; // resumes from poll() at the refill time
        break;
      }
      this.heldTx = null;
      queue.pushUsed(c.head, 0);
      done++;
      this.sendFrame(ctx, c, frameLen);
    }
    if (done) ctx.usedBuffers(TX);
    return done;
  }

  private sendFrame(ctx: VirtioContext, c: Chain, frameLen: number): void {
    if (frameLen < MIN_FRAME || frameLen > this.maxTx) {
      this.count('txDropped', 1);
      return;
    }
    let off = 0;
    for (const s of slices(ctx.mem, c.readable, 0, NET_HDR_SIZE)) {
      this.hdr.set(s, off);
      off += s.length;
    }
    const hdr = parseNetHdr(this.hdr);
    if (hdr.gsoType !== GSO_NONE && this.maxTx === MAX_FRAME) {
      this.count('txDropped', 1); // segmentation was not negotiated
      return;
    }
    if (frameLen > this.offloads.largestTx) this.offloads.largestTx = frameLen;
    if (hdr.gsoType !== GSO_NONE) {
      this.offloads.gsoFrames++;
      this.offloads.gsoBytes += frameLen;
    } else if (hdr.flags !== 0) this.offloads.csumFrames++;
    if (hdr.flags !== 0 || hdr.gsoType !== GSO_NONE) {
      // Offloads need a private copy: the device fills in checksums and cuts segments.
      if (this.txScratch.length < frameLen) this.txScratch = new Uint8Array(this.maxTx);
      const frame = this.txScratch.subarray(0, frameLen);
      let p = 0;
      for (const s of slices(ctx.mem, c.readable, NET_HDR_SIZE, frameLen)) {
        frame.set(s, p);
        p += s.length;
      }
      const why = transmitWithOffloads(frame, hdr, MAX_FRAME, (f) => {
        if (this.port.send([f], f.length)) {
          this.count('txFrames', 1);
          this.count('txBytes', f.length);
        } else {
          this.count('txDropped', 1);
        }
      });
      if (why) this.count('txDropped', 1);
      return;
    }
    if (frameLen > MAX_FRAME) {
      this.count('txDropped', 1);
      return;
    }
    if (this.port.send(slices(ctx.mem, c.readable, NET_HDR_SIZE, frameLen), frameLen)) {
      this.count('txFrames', 1);
      this.count('txBytes', frameLen);
    } else {
      this.count('txDropped', 1);
    }
  }

  /**
   * Deliver frames waiting in the port into the guest's receive buffers. Called
   * when the driver posts buffers and by the run loop between slices. Returns
   * how many frames were delivered.
   */
  poll(): number {
    const ctx = this.ctx;
    if (!ctx || ctx.broken) return 0;
    // Deferred frames too: this runs before every slice, so none waits longer than one.
    if (this.heldTx || this.deferTransmit) this.flushTransmit();
    if (ctx.broken) return 0;
    const queue = ctx.queues[RX];
    let delivered = 0;
    while (delivered < RX_BATCH) {
      const frame = this.port.peek();
      if (!frame) break;
      if (frame.length > MAX_FRAME || frame.length < MIN_FRAME) {
        this.port.consume();
        this.count('rxDropped', 1);
        continue;
      }
      if (!queue.hasAvailable()) break;
      if (this.rxLimiter.active && !this.rxLimiter.tryConsume(frame.length, 1)) break; // stays in the ring
      const ok = this.mergeable ? this.deliverMergeable(frame) : this.deliverOne(frame);
      if (ok === null) return delivered; // the driver broke the queue
      if (!ok) break; // not enough buffers yet: leave the frame queued
      this.port.consume();
      this.count('rxFrames', 1);
      this.count('rxBytes', frame.length);
      delivered++;
    }
    if (delivered) ctx.usedBuffers(RX);
    return delivered;
  }

  /** One chain holds header and frame. null: queue error (device failed). */
  private deliverOne(frame: Uint8Array): boolean | null {
    const ctx = this.ctx!;
    const queue = ctx.queues[RX];
    const r = queue.pop();
    if (r.kind === 'empty') return false;
    if (r.kind === 'error') {
      ctx.fail(r.error);
      return null;
    }
    const c = r.chain;
    if (c.readLen > 0) {
      ctx.fail('receive buffer has a device-readable part');
      return null;
    }
    const total = NET_HDR_SIZE + frame.length;
    if (c.writeLen < total) {
      // Too small for the frame: give the buffer back empty and drop the frame.
      queue.pushUsed(c.head, 0);
      this.port.consume();
      this.count('rxDropped', 1);
      return true;
    }
    this.hdr.fill(0);
    if (this.guestCsum) this.hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
    this.hdr[HDR_NUM_BUFFERS] = 1;
    this.writeAt(c.writable, 0, this.hdr);
    this.writeAt(c.writable, NET_HDR_SIZE, frame);
    queue.pushUsed(c.head, total);
    return true;
  }

  /** Header and frame spread over as many chains as needed (VIRTIO_NET_F_MRG_RXBUF). */
  private deliverMergeable(frame: Uint8Array): boolean | null {
    const ctx = this.ctx!;
    const queue = ctx.queues[RX];
    const total = NET_HDR_SIZE + frame.length;
    // Count the buffers first so a frame is never half-delivered: take chains only
    // while the avail ring says they are there, and put the frame in once they suffice.
    const used: { head: number; len: number; bufs: BufRange[] }[] = [];
    let room = 0;
    while (room < total) {
      if (!queue.hasAvailable()) {
        if (used.length === 0) return false;
        // The chains taken so far cannot be given back to the avail ring; fill them
        // with a truncated copy marked as dropped would confuse the driver, so the
        // frame is dropped and the chains are returned empty.
        for (const u of used) queue.pushUsed(u.head, 0);
        this.port.consume();
        this.count('rxDropped', 1);
        return true;
      }
      const r = queue.pop();
      if (r.kind === 'empty') return false;
      if (r.kind === 'error') {
        ctx.fail(r.error);
        return null;
      }
      if (r.chain.readLen > 0) {
        ctx.fail('receive buffer has a device-readable part');
        return null;
      }
      if (r.chain.writeLen === 0) {
        queue.pushUsed(r.chain.head, 0);
        continue;
      }
      const take = Math.min(r.chain.writeLen, total - room);
      used.push({ head: r.chain.head, len: take, bufs: r.chain.writable });
      room += take;
    }
    this.hdr.fill(0);
    if (this.guestCsum) this.hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
    this.hdr[HDR_NUM_BUFFERS] = used.length & 0xff;
    this.hdr[HDR_NUM_BUFFERS + 1] = used.length >> 8;
    // The first chain holds the header (every driver buffer is at least header-sized).
    let pos = 0; // position in header+frame
    for (const u of used) {
      let off = 0;
      while (off < u.len) {
        const n = pos < NET_HDR_SIZE ? Math.min(NET_HDR_SIZE - pos, u.len - off) : u.len - off;
        const src = pos < NET_HDR_SIZE ? this.hdr.subarray(pos, pos + n) : frame.subarray(pos - NET_HDR_SIZE, pos - NET_HDR_SIZE + n);
        this.writeAt(u.bufs, off, src);
        off += n;
        pos += n;
      }
      queue.pushUsed(u.head, u.len);
    }
    return true;
  }

  private writeAt(bufs: readonly BufRange[], from: number, src: Uint8Array): void {
    let p = 0;
    for (const s of slices(this.ctx!.mem, bufs, from, src.length, true)) {
      s.set(src.subarray(p, p + s.length));
      p += s.length;
    }
  }
}

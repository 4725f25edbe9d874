// virtio-mmio transport, version 2 (virtio 1.2, section 4.2.2): the register
// window of one slot, feature negotiation, queue setup, interrupts and reset.
// Device logic lives behind the small VirtioDevice interface. A device that finds
// the driver misbehaving calls `fail(reason)`: the transport sets
// DEVICE_NEEDS_RESET, raises a config-change interrupt, logs the reason and
// ignores the queues until the driver resets the device.

import { isRecord, isIntIn, isIntArray, type IrqLine, type MmioDevice, type AccessSize, type RestoreResult } from '../device.js';
import { hexToU64, u64ToHex } from '../persist.js';
import { type GuestMemory, joinAddr } from './memory.js';
import { Virtqueue } from './queue.js';

// ---- Register map (offsets in the slot) ----
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

export const VIRTIO_MMIO_MAGIC = 0x7472_6976; // "virt"
/** Vendor id reported by tsvisor's devices ("TSVM", little-endian). */
export const TSVISOR_VENDOR_ID = 0x4d56_5354;

// ---- Device status bits ----
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;

// ---- Interrupt status bits ----
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

// ---- Transport feature bits ----
export const VIRTIO_F_RING_INDIRECT_DESC = 28;
export const VIRTIO_F_RING_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** What the transport offers besides the device's own features. */
export const TRANSPORT_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_RING_INDIRECT_DESC) | bit(VIRTIO_F_RING_EVENT_IDX);

/** What a device gets from its transport once the driver is ready. */
export interface VirtioContext {
  readonly mem: GuestMemory;
  readonly queues: readonly Virtqueue[];
  /** Negotiated features. */
  readonly features: bigint;
  /** Raise a used-buffer interrupt for queue `q` if the driver wants one. */
  usedBuffers(q: number): void;
  /** The driver broke the protocol: needs-reset, config interrupt, log, stop. */
  fail(reason: string): void;
  /** True once fail() was called (until reset). */
  readonly broken: boolean;
  /** The device changed its config space (e.g. a new balloon target): config-change interrupt. */
  configChanged(): void;
}

/** Device-specific logic behind a transport. */
export interface VirtioDevice {
  readonly deviceId: number;
  readonly name: string;
  /** Device feature bits (the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX). */
  readonly features: bigint;
  /** Maximum size of each queue; the length is the number of queues. */
  readonly queueSizes: readonly number[];
  /**
   * Queues a driver with these negotiated features uses (default: all). A
   * state saved before the device had its later queues restores when the
   * features it negotiated leave them unused.
   */
  queuesUsed?(features: bigint): number;
  /** Device config space (read through the transport at 0x100). */
  configRead(offset: number, size: AccessSize): number;
  configWrite(offset: number, size: AccessSize, value: number): void;
  /** DRIVER_OK was set: queues are live. */
  activate(ctx: VirtioContext): void;
  /** The driver notified queue `q`. */
  notify(q: number): void;
  /** The driver reset the device (status 0). */
  reset(): void;
  /**
   * Optional timed work (rate limiters, periodic requests): the device clock time
   * in ms at which the machine should call poll(), or null for none. The machine
   * wakes an idle guest for it, so a waiting device needs no busy polling.
   */
  nextDeadline?(): number | null;
  poll?(): void;
  /** Optional device-specific counters for --stats, as a short text. */
  statsText?(): string;
  /**
   * The device's own state as plain data (see Snapshottable in device.ts). A chain
   * the device holds (taken from a queue, not yet used) is saved as its head
   * index and rebuilt on restore with Virtqueue.chainAt.
   */
  save(): unknown;
  /**
   * Restore into a fresh device. `ctx` is the live context when the driver had
   * set DRIVER_OK (the device takes it as activate() would, without serving
   * anything), else null. Validates before changing anything.
   */
  restore(state: unknown, ctx: VirtioContext | null): RestoreResult;
}

/** Saved state of a transport: its registers, its queues and the device's own state. */
export interface VirtioMmioState {
  deviceId: number;
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeatures: string;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  broken: boolean;
  /** Per queue: the ten address registers and the ring state. */
  queues: { addrRegs: number[]; ring: unknown }[];
  device: unknown;
}

export interface VirtioMmioOptions {
  mem: GuestMemory;
  irq: IrqLine;
  /** Why a device asked to be reset (driver errors); default: ignored. */
  log?: (message: string) => void;
}

/** What a transport counts for --stats: the driver's notifications and the interrupts they led to. */
export interface VirtioMmioCounters {
  /** QueueNotify writes that reached a live queue. */
  notifies: number;
  /** Used-buffer interrupts raised, and batches of used buffers the driver's event index let pass without one. */
  interrupts: number;
  suppressed: number;
}

export class VirtioMmio implements MmioDevice {
  readonly name: string;
  readonly counters: VirtioMmioCounters = { notifies: 0, interrupts: 0, suppressed: 0 };
  private readonly queues: Virtqueue[];
  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private broken = false;
  private irqLevel = false;
  private readonly offered: bigint;
  /** Per queue: the raw desc/driver/device address registers (index = (offset - 0x80) / 4). */
  private readonly addrRegs: Uint32Array[];

  constructor(readonly device: VirtioDevice, private readonly opts: VirtioMmioOptions) {
    this.name = `virtio-mmio(${device.name})`;
    this.offered = device.features | TRANSPORT_FEATURES;
    this.queues = device.queueSizes.map((n) => new Virtqueue(opts.mem, n));
    this.addrRegs = this.queues.map(() => new Uint32Array(10));
  }

  get deviceStatus(): number {
    return this.status;
  }

  get needsReset(): boolean {
    return this.broken;
  }

  read(offset: number, size: AccessSize): number {
    if (offset >= VIRTIO_MMIO_CONFIG) return this.device.configRead(offset - VIRTIO_MMIO_CONFIG, size);
    if (size !== 4 || offset & 3) return 0;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return 2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return TSVISOR_VENDOR_ID;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return this.deviceFeaturesSel > 1 ? 0 : Number((this.offered >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q ? q.maxSize : 0;
      case VIRTIO_MMIO_QUEUE_NUM:
        return q ? q.size : 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return this.status;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        return q ? this.addrRegs[this.queueSel][(offset - VIRTIO_MMIO_QUEUE_DESC_LOW) >> 2] : 0;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
        return 0xffff_ffff; // no shared memory regions
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.configGeneration;
      default:
        return 0;
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.device.configWrite(offset - VIRTIO_MMIO_CONFIG, size, value);
      return;
    }
    if (size !== 4 || offset & 3) return;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = value;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES: {
        if (this.status & STATUS_FEATURES_OK || this.driverFeaturesSel > 1) return;
        const shift = BigInt(32 * this.driverFeaturesSel);
        this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value >>> 0) << shift);
        return;
      }
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = value;
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        this.queueSel = value;
        return;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (q && !q.ready) q.size = value;
        return;
      case VIRTIO_MMIO_QUEUE_READY:
        if (!q) return;
        if (value & 1) {
          if (q.ready) return;
          const err = q.activate({
            indirect: (this.driverFeatures & bit(VIRTIO_F_RING_INDIRECT_DESC)) !== 0n,
            eventIdx: (this.driverFeatures & bit(VIRTIO_F_RING_EVENT_IDX)) !== 0n,
          });
          if (err) this.fail(`queue ${this.queueSel}: ${err}`);
        } else {
          q.ready = false;
        }
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        if (this.broken || !(this.status & STATUS_DRIVER_OK)) return;
        if (value < this.queues.length && this.queues[value].ready) {
          this.counters.notifies++;
          this.device.notify(value);
        }
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~value;
        this.updateIrq();
        return;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(value & 0xff);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        if (q && !q.ready) this.setQueueAddr(q, offset, value);
        return;
      default:
        return;
    }
  }

  private setQueueAddr(q: Virtqueue, offset: number, value: number): void {
    const regs = this.addrRegs[this.queueSel];
    regs[(offset - VIRTIO_MMIO_QUEUE_DESC_LOW) >> 2] = value;
    q.descAddr = joinAddr(regs[0], regs[1]);
    q.availAddr = joinAddr(regs[4], regs[5]);
    q.usedAddr = joinAddr(regs[8], regs[9]);
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    // FEATURES_OK is only kept if the driver accepted a subset we offer, with VERSION_1.
    if (value & STATUS_FEATURES_OK && !(this.status & STATUS_FEATURES_OK)) {
      const ok = (this.driverFeatures & ~this.offered) === 0n && (this.driverFeatures & bit(VIRTIO_F_VERSION_1)) !== 0n;
      if (!ok) value &= ~STATUS_FEATURES_OK;
    }
    const wasOk = (this.status & STATUS_DRIVER_OK) !== 0;
    this.status = (value & ~STATUS_DEVICE_NEEDS_RESET) | (this.status & STATUS_DEVICE_NEEDS_RESET);
    if (!wasOk && value & STATUS_DRIVER_OK && !this.broken) {
      if (!(this.status & STATUS_FEATURES_OK)) {
        this.fail('driver set DRIVER_OK without FEATURES_OK');
        return;
      }
      this.device.activate(this.context());
    }
  }

  private context(): VirtioContext {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      mem: this.opts.mem,
      queues: this.queues,
      features: this.driverFeatures,
      usedBuffers: (q: number) => {
        if (self.broken) return;
        if (self.queues[q]?.needsInterrupt()) {
          self.counters.interrupts++;
          self.raise(INT_USED_BUFFER);
        } else self.counters.suppressed++;
      },
      fail: (reason: string) => self.fail(reason),
      configChanged: () => self.configChanged(),
      get broken() {
        return self.broken;
      },
    };
  }

  /** The driver broke the rules: stop, ask for a reset and say why. */
  fail(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    this.status |= STATUS_DEVICE_NEEDS_RESET;
    this.opts.log?.(`${this.device.name}: ${reason}; device needs reset`);
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.raise(INT_CONFIG_CHANGE);
  }

  /** The device's next deadline while it is live (see VirtioDevice.nextDeadline). */
  nextDeadline(): number | null {
    if (this.broken || !(this.status & STATUS_DRIVER_OK) || !this.device.nextDeadline) return null;
    return this.device.nextDeadline();
  }

  /** Let the device do its timed work. */
  poll(): void {
    if (this.broken || !(this.status & STATUS_DRIVER_OK)) return;
    this.device.poll?.();
  }

  /** Signal a change of the device config space. */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (this.status & STATUS_DRIVER_OK) this.raise(INT_CONFIG_CHANGE);
  }

  private raise(bits: number): void {
    this.interruptStatus |= bits;
    this.updateIrq();
  }

  private updateIrq(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.opts.irq(level);
    }
  }

  save(): VirtioMmioState {
    return {
      deviceId: this.device.deviceId,
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: u64ToHex(this.driverFeatures),
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      broken: this.broken,
      queues: this.queues.map((q, i) => {
        const ring = q.save();
        // NaN (an address beyond 2^53) is not JSON: null stands for it.
        const a = (v: number) => (Number.isNaN(v) ? null : v);
        return { addrRegs: Array.from(this.addrRegs[i]), ring: { ...ring, desc: a(ring.desc), avail: a(ring.avail), used: a(ring.used) } };
      }),
      device: this.device.save(),
    };
  }

  /** Restore into a fresh transport (and its fresh device); snapshot input is untrusted. */
  restore(state: unknown): RestoreResult {
    const fail = (why: string): RestoreResult => ({ ok: false, error: `${this.device.name}: ${why}` });
    if (!isRecord(state)) return fail('state is not an object');
    if (state.deviceId !== this.device.deviceId) return fail(`saved device id ${String(state.deviceId)} is not this device's ${this.device.deviceId}`);
    if (!isIntIn(state.status, 0, 0xff)) return fail('status must be a byte');
    for (const k of ['deviceFeaturesSel', 'driverFeaturesSel', 'queueSel', 'configGeneration'] as const) {
      if (!isIntIn(state[k], 0, 0xffff_ffff)) return fail(`${k} must be a 32-bit integer`);
    }
    if (!isIntIn(state.interruptStatus, 0, INT_USED_BUFFER | INT_CONFIG_CHANGE)) return fail('interruptStatus must be 0..3');
    if (typeof state.broken !== 'boolean') return fail('broken must be a boolean');
    const features = hexToU64(state.driverFeatures);
    if (features === null) return fail('driverFeatures must be a hex u64');
    const status = state.status;
    if (status & STATUS_FEATURES_OK && ((features & ~this.offered) !== 0n || (features & bit(VIRTIO_F_VERSION_1)) === 0n)) {
      return fail('FEATURES_OK with features the device does not offer');
    }
    const live = (status & STATUS_DRIVER_OK) !== 0;
    if (live && !(status & STATUS_FEATURES_OK)) return fail('DRIVER_OK without FEATURES_OK');
    const fewest = Math.min(this.queues.length, this.device.queuesUsed?.(features) ?? this.queues.length);
    if (!Array.isArray(state.queues) || state.queues.length < fewest || state.queues.length > this.queues.length) {
      return fail(fewest === this.queues.length ? `queues must be ${this.queues.length} entries` : `queues must be ${fewest} to ${this.queues.length} entries`);
    }
    const qf = { indirect: (features & bit(VIRTIO_F_RING_INDIRECT_DESC)) !== 0n, eventIdx: (features & bit(VIRTIO_F_RING_EVENT_IDX)) !== 0n };
    // Queues first (each checks its rings against RAM), then the device that may hold chains in them.
    for (const [i, qs] of (state.queues as unknown[]).entries()) {
      if (!isRecord(qs) || !isIntArray(qs.addrRegs, 10, 0, 0xffff_ffff)) return this.undo(fail(`queue ${i}: addrRegs must be ten 32-bit integers`));
      const err = this.queues[i].restore(qs.ring, qf);
      if (err) return this.undo(fail(`queue ${i}: ${err}`));
      this.addrRegs[i].set(qs.addrRegs);
    }
    this.status = status;
    this.driverFeatures = features;
    this.deviceFeaturesSel = state.deviceFeaturesSel as number;
    this.driverFeaturesSel = state.driverFeaturesSel as number;
    this.queueSel = state.queueSel as number;
    this.interruptStatus = state.interruptStatus;
    this.configGeneration = state.configGeneration as number;
    this.broken = state.broken;
    const r = this.device.restore(state.device, live ? this.context() : null);
    if (!r.ok) return this.undo(r);
    this.irqLevel = !(this.interruptStatus !== 0);
    this.updateIrq();
    return { ok: true };
  }

  /** A restore failed half way: back to the power-on state, and pass the error on. */
  private undo(r: RestoreResult): RestoreResult {
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.interruptStatus = 0;
    this.broken = false;
    for (const q of this.queues) q.reset();
    for (const a of this.addrRegs) a.fill(0);
    this.device.reset();
    return r;
  }

  reset(): void {
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.interruptStatus = 0;
    this.broken = false;
    for (const q of this.queues) q.reset();
    for (const r of this.addrRegs) r.fill(0);
    this.device.reset();
    this.updateIrq();
  }
}

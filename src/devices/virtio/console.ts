// virtio-console (device id 3), one port and no multiport: the guest's hvc0.
// Queue 0 (receiveq) carries host input to the guest, queue 1 (transmitq) the
// guest's output. Input waits in a bounded buffer until the driver posts buffers.
// With VIRTIO_CONSOLE_F_SIZE the host's terminal size is in the config space:
// on a config-change interrupt Linux reads it and resizes hvc0's tty, so
// `stty size` in the guest follows the host's terminal.

import { isRecord, isIntArray, type AccessSize, type RestoreResult } from '../device.js';
import type { VirtioContext, VirtioDevice } from './mmio.js';
import { scatter } from './queue.js';

export const VIRTIO_ID_CONSOLE = 3;
const QUEUE_SIZE = 64;
const RX = 0;
const TX = 1;
/** Input kept while the guest has no receive buffers; older bytes are dropped beyond it. */
const MAX_PENDING_INPUT = 64 * 1024;

// Config: cols u16, rows u16, max_nr_ports u32 (unused: no multiport), emerg_wr u32 (not offered).
const CFG_SIZE = 12;
export const VIRTIO_CONSOLE_F_SIZE = 0;
/** Largest terminal dimension accepted (the config fields are 16 bits; a tty's too). */
export const MAX_CONSOLE_DIM = 0xffff;

export class VirtioConsole implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly name = 'virtio-console';
  readonly features = 1n << BigInt(VIRTIO_CONSOLE_F_SIZE);
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE];
  private ctx: VirtioContext | null = null;
  private pending: number[] = [];
  /** The host terminal's size; 0 x 0 until the host tells one. */
  private cols = 0;
  private rows = 0;

  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  configRead(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > CFG_SIZE) return 0;
    const cfg = [this.cols & 0xff, this.cols >> 8, this.rows & 0xff, this.rows >> 8];
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (cfg[offset + i] ?? 0);
    return v >>> 0;
  }
  configWrite(): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.notify(TX);
    this.deliver();
    // Linux takes the size only from a config-change interrupt, not at probe.
    if (this.cols || this.rows) ctx.configChanged();
  }

  /** The host terminal is `cols` x `rows` (RangeError outside 1..65535). */
  setSize(cols: number, rows: number): void {
    for (const [what, v] of [['cols', cols], ['rows', rows]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > MAX_CONSOLE_DIM) throw new RangeError(`console ${what} must be 1..${MAX_CONSOLE_DIM}, not ${v}`);
    }
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    if (this.ctx && this.ctx.features & this.features) this.ctx.configChanged();
  }

  get size(): { cols: number; rows: number } {
    return { cols: this.cols, rows: this.rows };
  }

  reset(): void {
    this.ctx = null;
  }

  /** Input not yet taken by the guest (it is the only state besides the queues). */
  save(): unknown {
    return { pending: this.pending.slice(), cols: this.cols, rows: this.rows };
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    if (!isRecord(state) || !isIntArray(state.pending, -1, 0, 0xff) || state.pending.length > MAX_PENDING_INPUT) {
      return { ok: false, error: `${this.name}: pending must be at most ${MAX_PENDING_INPUT} bytes` };
    }
    // Snapshots from before the size feature have no size: 0 x 0.
    const dims = [state.cols ?? 0, state.rows ?? 0];
    if (!isIntArray(dims, 2, 0, MAX_CONSOLE_DIM)) return { ok: false, error: `${this.name}: cols and rows must be 0..${MAX_CONSOLE_DIM}` };
    this.pending = state.pending.slice();
    [this.cols, this.rows] = dims;
    this.ctx = ctx;
    return { ok: true };
  }

  /** True once the driver is up and has posted receive buffers. */
  get canReceive(): boolean {
    return this.ctx !== null && !this.ctx.broken && this.ctx.queues[RX].hasAvailable();
  }

  /** Host input for the guest; returns how many bytes were accepted (all, up to the buffer limit). */
  pushInput(bytes: Uint8Array | readonly number[]): number {
    const room = MAX_PENDING_INPUT - this.pending.length;
    const n = Math.min(room, bytes.length);
    for (let i = 0; i < n; i++) this.pending.push(bytes[i]);
    this.deliver();
    return n;
  }

  private deliver(): void {
    const ctx = this.ctx;
    if (!ctx || !this.pending.length) return;
    const queue = ctx.queues[RX];
    let served = 0;
    while (this.pending.length && !ctx.broken && queue.hasAvailable()) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      if (r.chain.readLen > 0) return ctx.fail('receive buffer is device-readable');
      const n = Math.min(r.chain.writeLen, this.pending.length);
      scatter(ctx.mem, r.chain.writable, 0, Uint8Array.from(this.pending.splice(0, n)));
      queue.pushUsed(r.chain.head, n);
      served++;
    }
    if (served) ctx.usedBuffers(RX);
  }

  notify(q: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (q === RX) {
      this.deliver();
      return;
    }
    if (q !== TX) return;
    const queue = ctx.queues[TX];
    let served = 0;
    while (!ctx.broken) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      if (r.chain.writeLen > 0) return ctx.fail('transmit buffer is device-writable');
      // Copied buffer by buffer: a chain's total length is bounded only by guest RAM.
      for (const b of r.chain.readable) if (b.len) this.output(ctx.mem.ram.slice(b.off, b.off + b.len));
      queue.pushUsed(r.chain.head, 0);
      served++;
    }
    if (served) ctx.usedBuffers(TX);
  }
}

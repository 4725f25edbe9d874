// virtio-console (device id 3), one port and no multiport: the guest's hvc0.
// Queue 0 (receiveq) carries host input to the guest, queue 1 (transmitq) the
// guest's output. Input waits in a bounded buffer until the driver posts buffers.

import { isRecord, isIntArray, type AccessSize, type RestoreResult } from '../device.js';
import type { VirtioContext, VirtioDevice } from './mmio.js';
import { scatter } from './queue.js';

export const VIRTIO_ID_CONSOLE = 3;
const QUEUE_SIZE = 64;
const RX = 0;
const TX = 1;
/** Input kept while the guest has no receive buffers; older bytes are dropped beyond it. */
const MAX_PENDING_INPUT = 64 * 1024;

// Config: cols u16, rows u16, max_nr_ports u32, emerg_wr u32 (all unused: no feature bits offered).
const CFG_SIZE = 12;

export class VirtioConsole implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly name = 'virtio-console';
  readonly features = 0n;
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE];
  private ctx: VirtioContext | null = null;
  private pending: number[] = [];

  constructor(private readonly output: (bytes: Uint8Array) => void) {}

  configRead(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > CFG_SIZE) return 0;
    return 0;
  }
  configWrite(): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.notify(TX);
    this.deliver();
  }

  reset(): void {
    this.ctx = null;
  }

  /** Input not yet taken by the guest (it is the only state besides the queues). */
  save(): unknown {
    return { pending: this.pending.slice() };
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    if (!isRecord(state) || !isIntArray(state.pending, -1, 0, 0xff) || state.pending.length > MAX_PENDING_INPUT) {
      return { ok: false, error: `${this.name}: pending must be at most ${MAX_PENDING_INPUT} bytes` };
    }
    this.pending = state.pending.slice();
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

// virtio-rng (device id 4): fills each writable buffer the driver posts with
// bytes from the host's `randomBytes` (the worker passes the host CSPRNG).

import { isRecord, type AccessSize, type RestoreResult } from '../device.js';
import type { VirtioContext, VirtioDevice } from './mmio.js';
import { slices } from './queue.js';

export const VIRTIO_ID_RNG = 4;
const QUEUE_SIZE = 64;
/** At most this many bytes per request (the driver asks for small amounts anyway). */
const MAX_REQUEST = 64 * 1024;

export class VirtioRng implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_RNG;
  readonly name = 'virtio-rng';
  readonly features = 0n;
  readonly queueSizes = [QUEUE_SIZE];
  private ctx: VirtioContext | null = null;

  constructor(private readonly randomBytes: (n: number) => Uint8Array) {}

  configRead(_offset: number, _size: AccessSize): number {
    return 0;
  }
  configWrite(): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.notify(0);
  }

  reset(): void {
    this.ctx = null;
  }

  /** Nothing beyond the queues: every request is served as it comes. */
  save(): unknown {
    return {};
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    if (!isRecord(state)) return { ok: false, error: `${this.name}: state is not an object` };
    this.ctx = ctx;
    return { ok: true };
  }

  notify(q: number): void {
    const ctx = this.ctx;
    if (!ctx || q !== 0) return;
    const queue = ctx.queues[0];
    let served = 0;
    while (!ctx.broken) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      if (r.chain.readLen > 0) return ctx.fail('entropy request has a device-readable buffer');
      const n = Math.min(r.chain.writeLen, MAX_REQUEST);
      const bytes = this.randomBytes(n);
      let pos = 0;
      for (const s of slices(ctx.mem, r.chain.writable, 0, n, true)) {
        s.set(bytes.subarray(pos, pos + s.length));
        pos += s.length;
      }
      queue.pushUsed(r.chain.head, n);
      served++;
    }
    if (served) ctx.usedBuffers(0);
  }
}

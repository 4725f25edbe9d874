// virtio-input (device id 18, virtio 1.2 section 5.8) as the machine's buttons:
// a key device with KEY_POWER and KEY_RESTART only. The host "presses" one
// (press, sync, release, sync); the guest's evdev handler acts on it:
// systemd-logind powers off or reboots, the default guest's /init runs its
// own handler. Queue 0 (eventq) takes the driver's empty 8-byte buffers, one
// event each; queue 1 (statusq) carries LED and similar feedback from the
// driver, which a button has no use for: it is consumed and returned.

import { isRecord, isIntArray, type AccessSize, type RestoreResult } from '../../device.js';
import type { VirtioContext, VirtioDevice } from '../mmio.js';
import { scatter } from '../queue.js';
import { configBytes, type InputIdentity } from './config.js';

export const VIRTIO_ID_INPUT = 18;
const QUEUE_SIZE = 64;
const EVENTQ = 0;
const STATUSQ = 1;

// Linux input event codes (include/uapi/linux/input-event-codes.h).
export const EV_SYN = 0x00;
export const EV_KEY = 0x01;
export const SYN_REPORT = 0;
export const KEY_POWER = 116;
export const KEY_RESTART = 0x198;

/** The buttons the host can press. */
export type Button = 'power' | 'restart';
export const BUTTON_KEYS: Record<Button, number> = { power: KEY_POWER, restart: KEY_RESTART };

/** One virtio_input_event: le16 type, le16 code, le32 value. */
export interface InputEvent {
  type: number;
  code: number;
  value: number;
}
const EVENT_BYTES = 8;
/** Events kept while the driver has posted no buffers; older presses are dropped beyond it. */
export const MAX_PENDING_EVENTS = 64;

export const BUTTONS_IDENTITY: InputIdentity = {
  name: 'tsvisor buttons',
  serial: 'tsvisor-0',
  // BUS_VIRTUAL, with tsvisor's vendor id ("TS") and a product number of its own.
  devids: { bustype: 0x06, vendor: 0x5354, product: 0x0001, version: 0x0001 },
  keys: [KEY_POWER, KEY_RESTART],
};

export function encodeEvent(e: InputEvent): Uint8Array {
  const b = new Uint8Array(EVENT_BYTES);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, e.type, true);
  dv.setUint16(2, e.code, true);
  dv.setInt32(4, e.value, true);
  return b;
}

export class VirtioInput implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_INPUT;
  readonly name = 'virtio-input';
  readonly features = 0n;
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE];
  private ctx: VirtioContext | null = null;
  private pending: InputEvent[] = [];
  /** The driver's config selection (select, subsel): it picks what the union at offset 8 shows. */
  private select = 0;
  private subsel = 0;
  private readonly identity: InputIdentity;

  constructor(identity: InputIdentity = BUTTONS_IDENTITY) {
    this.identity = identity;
  }

  /** True once the guest's driver is up (DRIVER_OK): a press will reach it. */
  get active(): boolean {
    return this.ctx !== null && !this.ctx.broken;
  }

  configRead(offset: number, size: AccessSize): number {
    const cfg = configBytes(this.identity, this.select, this.subsel);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (cfg[offset + i] ?? 0);
    return v >>> 0;
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    // Only select (offset 0) and subsel (offset 1) are writable; a wider write covers both.
    for (let i = 0; i < size; i++) {
      const byte = (value >>> (8 * i)) & 0xff;
      if (offset + i === 0) this.select = byte;
      else if (offset + i === 1) this.subsel = byte;
    }
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    this.deliver();
    this.notify(STATUSQ);
  }

  reset(): void {
    this.ctx = null;
    this.select = this.subsel = 0;
    // A driver that resets (a guest reboot, a module reload) starts from a clean slate.
    this.pending = [];
  }

  /** Press and release `button` (four events); false when more are queued than the bound. */
  press(button: Button): boolean {
    const code = BUTTON_KEYS[button];
    return this.queue([
      { type: EV_KEY, code, value: 1 },
      { type: EV_SYN, code: SYN_REPORT, value: 0 },
      { type: EV_KEY, code, value: 0 },
      { type: EV_SYN, code: SYN_REPORT, value: 0 },
    ]);
  }

  private queue(events: InputEvent[]): boolean {
    if (this.pending.length + events.length > MAX_PENDING_EVENTS) return false;
    this.pending.push(...events);
    this.deliver();
    return true;
  }

  save(): unknown {
    return { select: this.select, subsel: this.subsel, pending: this.pending.map((e) => [e.type, e.code, e.value]) };
  }

  restore(state: unknown, ctx: VirtioContext | null): RestoreResult {
    const fail = (why: string): RestoreResult => ({ ok: false, error: `${this.name}: ${why}` });
    if (!isRecord(state)) return fail('state is not an object');
    if (!isIntArray([state.select, state.subsel], 2, 0, 0xff)) return fail('select and subsel must be bytes');
    const p = state.pending;
    if (!Array.isArray(p) || p.length > MAX_PENDING_EVENTS) return fail(`pending must be at most ${MAX_PENDING_EVENTS} events`);
    const events: InputEvent[] = [];
    for (const e of p as unknown[]) {
      if (!Array.isArray(e) || e.length !== 3 || !isIntArray(e.slice(0, 2), 2, 0, 0xffff) || !isIntArray([e[2]], 1, -0x8000_0000, 0x7fff_ffff)) {
        return fail('each pending event must be [type u16, code u16, value s32]');
      }
      events.push({ type: e[0] as number, code: e[1] as number, value: e[2] as number });
    }
    this.select = state.select as number;
    this.subsel = state.subsel as number;
    this.pending = events;
    this.ctx = ctx;
    return { ok: true };
  }

  notify(q: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (q === EVENTQ) {
      this.deliver();
      return;
    }
    if (q !== STATUSQ) return;
    const queue = ctx.queues[STATUSQ];
    let served = 0;
    while (!ctx.broken) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      if (r.chain.writeLen > 0) return ctx.fail('status buffer is device-writable');
      queue.pushUsed(r.chain.head, 0);
      served++;
    }
    if (served) ctx.usedBuffers(STATUSQ);
  }

  /** One pending event into each buffer the driver has posted. */
  private deliver(): void {
    const ctx = this.ctx;
    if (!ctx || !this.pending.length) return;
    const queue = ctx.queues[EVENTQ];
    let served = 0;
    while (this.pending.length && !ctx.broken) {
      const r = queue.pop();
      if (r.kind === 'empty') break;
      if (r.kind === 'error') return ctx.fail(r.error);
      if (r.chain.readLen > 0) return ctx.fail('event buffer is device-readable');
      if (r.chain.writeLen < EVENT_BYTES) return ctx.fail(`event buffer of ${r.chain.writeLen} bytes (an event is ${EVENT_BYTES})`);
      scatter(ctx.mem, r.chain.writable, 0, encodeEvent(this.pending.shift()!));
      queue.pushUsed(r.chain.head, EVENT_BYTES);
      served++;
    }
    if (served) ctx.usedBuffers(EVENTQ);
  }
}

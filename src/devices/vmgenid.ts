// VM generation ID ("microsoft,vmgenid" in the device tree): one page whose first
// 16 bytes hold a 128-bit ID that changes whenever the VM may have been duplicated
// (a clone started from a snapshot). Linux reads it at probe and again on the
// interrupt, and feeds it to the RNG (add_vmfork_randomness) so clones stop
// sharing a random state. The line is level-triggered and the driver has no
// acknowledge register, so reading the ID is the acknowledge: the line drops then.

import { isRecord, isIntArray, type IrqLine, type MmioDevice, type RestoreResult, type Snapshottable } from './device.js';

export const VMGENID_BYTES = 16;

export interface VmGenIdState {
  /** The ID, 16 bytes. */
  id: number[];
  /** A change not yet read by the guest (the interrupt line is up). */
  pending: boolean;
}

export class VmGenId implements MmioDevice, Snapshottable {
  readonly name = 'vmgenid';
  private readonly id = new Uint8Array(VMGENID_BYTES);
  private pending = false;

  /** `initial` is the boot ID (16 bytes); all zeros until set. */
  constructor(private readonly irq: IrqLine, initial?: Uint8Array) {
    if (initial) this.setId(initial);
  }

  /** The current ID (a copy). */
  get value(): Uint8Array {
    return this.id.slice();
  }

  /** Give the VM a new generation and tell the guest (raises the interrupt until the guest reads the ID). */
  regenerate(id: Uint8Array): void {
    this.setId(id);
    this.pending = true;
    this.irq(true);
  }

  private setId(id: Uint8Array): void {
    if (id.length !== VMGENID_BYTES) throw new RangeError(`a VM generation ID has ${VMGENID_BYTES} bytes, not ${id.length}`);
    this.id.set(id);
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > VMGENID_BYTES) return 0;
    if (this.pending) {
      this.pending = false;
      this.irq(false);
    }
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.id[offset + i]!;
    return v >>> 0;
  }

  /** Read-only for the guest. */
  write(_offset: number, _size: 1 | 2 | 4, _value: number): void {}

  save(): VmGenIdState {
    return { id: Array.from(this.id), pending: this.pending };
  }

  restore(state: unknown): RestoreResult {
    if (!isRecord(state)) return { ok: false, error: 'vmgenid: state is not an object' };
    if (!isIntArray(state.id, VMGENID_BYTES, 0, 0xff)) return { ok: false, error: `vmgenid: id must be ${VMGENID_BYTES} bytes` };
    if (typeof state.pending !== 'boolean') return { ok: false, error: 'vmgenid: pending must be a boolean' };
    this.id.set(state.id);
    this.pending = state.pending;
    this.irq(this.pending);
    return { ok: true };
  }
}

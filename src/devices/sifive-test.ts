// SiFive test device ("sifive,test0" / syscon): the guest powers off, resets or
// reports failure by writing a magic value to offset 0.

import type { MmioDevice, RestoreResult, Snapshottable } from './device.js';

// ---- Register map ----
export const TEST_REG_CONTROL = 0x0;

// ---- Values written to the control register (low 16 bits) ----
export const TEST_FAIL = 0x3333; // (code << 16) | TEST_FAIL
export const TEST_PASS = 0x5555; // power off, exit code 0
export const TEST_RESET = 0x7777;

export type PowerKind = 'poweroff' | 'reset' | 'fail';

export interface SifiveTestOptions {
  name?: string;
  onPower: (kind: PowerKind, code: number) => void;
}

export class SifiveTest implements MmioDevice, Snapshottable {
  readonly name: string;
  private readonly onPower: (kind: PowerKind, code: number) => void;

  constructor(opts: SifiveTestOptions) {
    this.name = opts.name ?? 'sifive-test';
    this.onPower = opts.onPower;
  }

  read(_offset: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset !== TEST_REG_CONTROL || size !== 4) return;
    value >>>= 0;
    const cmd = value & 0xffff;
    if (cmd === TEST_PASS) this.onPower('poweroff', 0);
    else if (cmd === TEST_RESET) this.onPower('reset', 0);
    else if (cmd === TEST_FAIL) this.onPower('fail', value >>> 16);
    // Anything else is ignored, as on QEMU.
  }

  /** The device has no state; the pair exists so every device snapshots the same way. */
  save(): Record<string, never> {
    return {};
  }

  restore(_state: unknown): RestoreResult {
    return { ok: true };
  }
}

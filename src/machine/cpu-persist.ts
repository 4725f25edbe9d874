// Save and restore of the hart: the x/f registers and fflags/frm from linear
// memory, every other field through the core's cpuStateGet/cpuStateSet (module
// globals). The field names below are the order of src/cpu/persist.ts. A
// restore validates everything first, then writes, then drops the core's
// caches (TLBs, translations): those are never part of a snapshot.

import type { CpuCore } from './cpu-core.js';
import { isRecord, isIntIn, type RestoreResult } from '../devices/device.js';
import { hexToU64, u64ToHex } from '../devices/persist.js';

/** Core fields in cpuStateGet order. `ramSize` is checked, never written (reset() fixes it). */
export const CPU_FIELDS = [
  'pc', 'priv', 'instret', 'mstatus', 'medeleg', 'mideleg', 'mie', 'mipSw', 'mipHw', 'mtvec', 'mscratch', 'mepc',
  'mcause', 'mtval', 'mcounteren', 'menvcfg', 'stvec', 'sscratch', 'sepc', 'scause', 'stval', 'scounteren',
  'senvcfg', 'satp', 'stimecmp', 'mhartid', 'mtimecmp', 'msip', 'timeNow', 'deterministic', 'timeSkew',
  'reservation', 'ecallHookMask', 'jitEnabled', 'ramSize',
  // Added with PMP, Sdtrig and writable counters: absent in older snapshots (the
  // reset values stay then, except PMP, which allows all as those machines did).
  'instretDelta', 'cycleDelta',
  'pmpaddr0', 'pmpaddr1', 'pmpaddr2', 'pmpaddr3', 'pmpaddr4', 'pmpaddr5', 'pmpaddr6', 'pmpaddr7',
  'pmpaddr8', 'pmpaddr9', 'pmpaddr10', 'pmpaddr11', 'pmpaddr12', 'pmpaddr13', 'pmpaddr14', 'pmpaddr15',
  'pmpcfg0', 'pmpcfg2', 'tselect',
  'tdata1_0', 'tdata2_0', 'tdata1_1', 'tdata2_1', 'tdata1_2', 'tdata2_2', 'tdata1_3', 'tdata2_3',
] as const;

/** The first field older snapshots lack. */
const FIRST_OPTIONAL = CPU_FIELDS.indexOf('instretDelta');

export type CpuField = (typeof CPU_FIELDS)[number];

export interface CpuState {
  /** x0..x31 and f0..f31 as hex strings. */
  x: string[];
  f: string[];
  fflags: number;
  frm: number;
  /** Every field of CPU_FIELDS, hex strings. */
  csr: Record<CpuField, string>;
}

/** Extra limits a field must respect (beyond being a u64); null: any value. */
function fieldProblem(name: CpuField, v: bigint): string | null {
  switch (name) {
    case 'priv':
      return v === 0n || v === 1n || v === 3n ? null : 'privilege must be 0 (U), 1 (S) or 3 (M)';
    case 'mcounteren':
    case 'scounteren':
    case 'ecallHookMask':
      return v <= 0xffff_ffffn ? null : 'must fit 32 bits';
    case 'msip':
    case 'deterministic':
    case 'jitEnabled':
      return v <= 1n ? null : 'must be 0 or 1';
    case 'satp': {
      const mode = v >> 60n;
      return mode === 0n || mode === 8n || mode === 9n ? null : 'unsupported translation mode';
    }
    case 'pmpcfg0':
    case 'pmpcfg2':
      for (let b = 0n; b < 64n; b += 8n) {
        const c = (v >> b) & 0xffn;
        if ((c & 0x60n) !== 0n || (c & 3n) === 2n) return 'reserved PMP configuration bits set';
      }
      return null;
    case 'tselect':
      return v < 4n ? null : 'no such trigger';
    default:
      return null;
  }
}

/** The state of hart `hart` (default: the live one; others come from their saved context). */
export function saveCpu(core: CpuCore, hart?: number): CpuState {
  const ex = core.exports;
  const h = hart ?? ex.hartCurrent();
  const csr = {} as Record<CpuField, string>;
  CPU_FIELDS.forEach((name, i) => (csr[name] = u64ToHex(ex.hartFieldGet(h, i))));
  // A debugger's triggers (dmode set) belong to the host session, not to the guest: saved disabled.
  for (let t = 0; t < 4; t++) {
    const k1 = `tdata1_${t}` as CpuField;
    if ((BigInt(csr[k1]) >> 59n) & 1n) {
      csr[k1] = u64ToHex(0xfn << 60n);
      csr[`tdata2_${t}` as CpuField] = u64ToHex(0n);
    }
  }
  const x: string[] = [];
  const f: string[] = [];
  for (let r = 0; r < 32; r++) {
    x.push(u64ToHex(ex.hartRegGet(h, r)));
    f.push(u64ToHex(ex.hartRegGet(h, 32 + r)));
  }
  return { x, f, fflags: Number(ex.hartRegGet(h, 64)), frm: Number(ex.hartRegGet(h, 65)), csr };
}

/** Restore into a core that was reset() for the same RAM size. Nothing changes unless all of `s` is valid. */
export function restoreCpu(core: CpuCore, s: unknown): RestoreResult {
  if (!isRecord(s)) return { ok: false, error: 'cpu: state is not an object' };
  const regs = (k: 'x' | 'f'): bigint[] | null => {
    const a = s[k];
    if (!Array.isArray(a) || a.length !== 32) return null;
    const out = a.map(hexToU64);
    return out.every((v) => v !== null) ? (out as bigint[]) : null;
  };
  const x = regs('x');
  const f = regs('f');
  if (!x) return { ok: false, error: 'cpu: x must be 32 hex u64 strings' };
  if (!f) return { ok: false, error: 'cpu: f must be 32 hex u64 strings' };
  if (!isIntIn(s.fflags, 0, 31)) return { ok: false, error: 'cpu: fflags must be an integer in 0..31' };
  if (!isIntIn(s.frm, 0, 7)) return { ok: false, error: 'cpu: frm must be an integer in 0..7' };
  if (!isRecord(s.csr)) return { ok: false, error: 'cpu: csr is not an object' };
  const values: (bigint | undefined)[] = [];
  for (const [i, name] of CPU_FIELDS.entries()) {
    if (i >= FIRST_OPTIONAL && s.csr[name] === undefined) {
      values.push(undefined);
      continue;
    }
    const v = hexToU64(s.csr[name]);
    if (v === null) return { ok: false, error: `cpu: field ${name} is missing or not a hex u64` };
    const bad = fieldProblem(name, v);
    if (bad) return { ok: false, error: `cpu: field ${name}: ${bad}` };
    if (name.startsWith('pmpaddr') && v >> 54n !== 0n) return { ok: false, error: `cpu: field ${name}: more than 54 bits` };
    if (name.startsWith('tdata1_') && !core.exports.trigLegal(v)) return { ok: false, error: `cpu: field ${name}: not a trigger this core holds` };
    values.push(v);
  }
  const ram = values[CPU_FIELDS.indexOf('ramSize')];
  if (ram !== BigInt(core.ramSize)) return { ok: false, error: `cpu: RAM size ${ram} does not match the machine's ${core.ramSize}` };
  const ex = core.exports;
  values.forEach((v, i) => {
    if (v !== undefined && CPU_FIELDS[i] !== 'ramSize') ex.cpuStateSet(i, v);
  });
  // A snapshot from before PMP existed ran with every access allowed: keep it so.
  if (values[CPU_FIELDS.indexOf('pmpcfg2')] === undefined) core.grantAllMemory();
  for (let r = 1; r < 32; r++) core.setX(r, x[r]);
  for (let r = 0; r < 32; r++) core.setF(r, f[r]);
  core.fpControl = { fflags: s.fflags, frm: s.frm };
  ex.cpuStateRestored();
  return { ok: true };
}

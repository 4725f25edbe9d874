// A debugger's view of a machine: registers, and guest memory by virtual
// address (through the hart's page tables, without setting A/D bits or
// raising faults) or by physical address. Only RAM is read or written:
// reading a device register can change the device (a UART's receive FIFO),
// so device memory reads as absent. No Node APIs.

import type { CpuCore } from './cpu-core.js';
import { RAM_BASE } from './layout.js';

const PRV_M = 3;
const SATP_CSR = 0x180;
const PTE_V = 1n;
const PTE_R = 2n;
const PTE_W = 4n;
const PTE_X = 8n;
const PPN_MASK = (1n << 44n) - 1n;

/** The physical address the hart's current mapping gives `va`, or null when it is not mapped. */
export function debugTranslate(core: CpuCore, va: bigint): bigint | null {
  va = BigInt.asUintN(64, va);
  const satp = BigInt.asUintN(64, core.readCsr(SATP_CSR));
  const mode = Number(satp >> 60n);
  if (core.priv === PRV_M || mode === 0) return va;
  if (mode !== 8 && mode !== 9) return null;
  const levels = mode === 8 ? 3 : 4;
  const vaBits = BigInt(12 + 9 * levels);
  if (BigInt.asUintN(64, BigInt.asIntN(Number(vaBits), va)) !== va) return null;
  let table = (satp & PPN_MASK) << 12n;
  for (let i = levels - 1; i >= 0; i--) {
    const shift = BigInt(12 + 9 * i);
    const pte = readPhys64(core, table + (((va >> shift) & 0x1ffn) << 3n));
    if (pte === null || (pte & PTE_V) === 0n || (pte & (PTE_R | PTE_W)) === PTE_W) return null;
    const ppn = (pte >> 10n) & PPN_MASK;
    if ((pte & (PTE_R | PTE_X)) === 0n) {
      table = ppn << 12n;
      continue;
    }
    const mask = (1n << shift) - 1n;
    return ((ppn << 12n) & ~mask) | (va & mask);
  }
  return null;
}

function ramOffset(core: CpuCore, pa: bigint, len: number): number | null {
  const off = pa - BigInt(RAM_BASE);
  if (off < 0n || off + BigInt(len) > BigInt(core.ramSize)) return null;
  return Number(off);
}

function readPhys64(core: CpuCore, pa: bigint): bigint | null {
  const off = ramOffset(core, pa, 8);
  if (off === null) return null;
  return new DataView(core.ram.buffer, core.ram.byteOffset + off, 8).getBigUint64(0, true);
}

/** Each page-sized piece of [addr, addr+len): its RAM offset, or null where unmapped or not RAM. */
function pieces(core: CpuCore, addr: bigint, len: number, phys: boolean): { off: number | null; n: number }[] {
  const out: { off: number | null; n: number }[] = [];
  let a = BigInt.asUintN(64, addr);
  let left = len;
  while (left > 0) {
    const n = Math.min(left, 0x1000 - Number(a & 0xfffn));
    const pa = phys ? a : debugTranslate(core, a);
    out.push({ off: pa === null ? null : ramOffset(core, pa, n), n });
    a = BigInt.asUintN(64, a + BigInt(n));
    left -= n;
  }
  return out;
}

/** Up to `len` bytes of guest memory at addr: stops at the first byte that is not mapped RAM. */
export function debugRead(core: CpuCore, addr: bigint, len: number, phys: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const p of pieces(core, addr, len, phys)) {
    if (p.off === null) break;
    parts.push(core.ram.slice(p.off, p.off + p.n));
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Write guest memory (all or nothing); translated code of the written pages is dropped. */
export function debugWrite(core: CpuCore, addr: bigint, data: Uint8Array, phys: boolean): boolean {
  const ps = pieces(core, addr, data.length, phys);
  if (ps.some((p) => p.off === null)) return false;
  let at = 0;
  for (const p of ps) {
    core.ram.set(data.subarray(at, at + p.n), p.off!);
    core.noteRamWrite(p.off!, p.n);
    at += p.n;
  }
  return true;
}

// CLINT (core-local interruptor, the ACLINT MSWI + MTIMER layout of QEMU's virt):
// msip and mtimecmp per hart, one mtime. Emulated in the core because timer reads
// and compares sit on the interrupt hot path; a register of a hart that is not
// running lives in that hart's saved context (harts.ts).

import { readTime, breakBatch, msip, mtimecmp } from './hart';
import { curHart, hartCount, slotGet, slotSet, F_MSIP, F_MTIMECMP } from './hart-slots';

function clintMsip(h: u32): u32 {
  return h == curHart ? msip : <u32>slotGet(h, F_MSIP);
}
function clintSetMsip(h: u32, v: u32): void {
  if (h == curHart) msip = v;
  else slotSet(h, F_MSIP, <u64>v);
}
function clintMtimecmp(h: u32): u64 {
  return h == curHart ? mtimecmp : slotGet(h, F_MTIMECMP);
}
function clintSetMtimecmp(h: u32, v: u64): void {
  if (h == curHart) mtimecmp = v;
  else slotSet(h, F_MTIMECMP, v);
}

export const CLINT_BASE: u64 = 0x2000000;
export const CLINT_SIZE: u64 = 0x10000;
const MSIP0: u32 = 0x0;
const MTIMECMP0: u32 = 0x4000;
const MTIME: u32 = 0xbff8;

function read64(off: u32, base: u32, v: u64, size: u32): u64 {
  const shift = <u64>((off - base) * 8);
  if (size == 8) return v;
  if (size == 4) return (v >> shift) & 0xffffffff;
  return (v >> shift) & (size == 2 ? 0xffff : 0xff);
}

export function clintRead(off: u32, size: u32): u64 {
  if (off >= MSIP0 && off < MSIP0 + 4 * hartCount) return <u64>clintMsip((off - MSIP0) >> 2);
  if (off >= MTIMECMP0 && off < MTIMECMP0 + 8 * hartCount) {
    const h = (off - MTIMECMP0) >> 3;
    return read64(off, MTIMECMP0 + (h << 3), clintMtimecmp(h), size);
  }
  if (off >= MTIME && off < MTIME + 8) return read64(off, MTIME, readTime(), size);
  return 0;
}

export function clintWrite(off: u32, size: u32, v: u64): void {
  if (off >= MSIP0 && off < MSIP0 + 4 * hartCount) {
    if ((off & 3) == 0) clintSetMsip((off - MSIP0) >> 2, <u32>v & 1);
    breakBatch = true;
    return;
  }
  if (off >= MTIMECMP0 && off < MTIMECMP0 + 8 * hartCount) {
    const h = (off - MTIMECMP0) >> 3;
    const at = MTIMECMP0 + (h << 3);
    let cmp = clintMtimecmp(h);
    if (size == 8) cmp = v;
    else if (size == 4) {
      if (off == at) cmp = (cmp & 0xffffffff00000000) | (v & 0xffffffff);
      else cmp = (cmp & 0xffffffff) | (v << 32);
    }
    clintSetMtimecmp(h, cmp);
    breakBatch = true;
  }
  // mtime writes are ignored: time follows the host clock (or the instruction count).
}

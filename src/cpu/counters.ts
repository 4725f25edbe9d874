// Event counters of the system path (traps, fences, address-space switches,
// unlinking, dispatcher round trips) for --stats: what it costs to leave
// translated code, and why. u64 each at SYS_COUNTS_OFF; the host names them in
// the same order (SYS_COUNTER_NAMES in src/machine/cpu-core.ts).

import { STATE, SYS_COUNTS_OFF } from './layout';
import { stateAt } from './hart-area';

/** Blocks the dispatcher called (each one starts a chain of linked blocks). */
export const CNT_DISPATCH: u32 = 0;
/** Block heads the dispatcher found no translation for (interpreted). */
export const CNT_HEAD_MISS: u32 = 1;
/** The dispatcher linked the exit a chain left through (the link was missing or stale). */
export const CNT_RELINK: u32 = 2;
/** Chains that ended in a trap, or because the batch had to end (breakBatch). */
export const CNT_CHAIN_TRAP: u32 = 3;
export const CNT_CHAIN_BREAK: u32 = 4;
/** Every link made stale (global epoch), by cause. */
export const CNT_UNLINK_FLUSH: u32 = 5;
export const CNT_UNLINK_CODE: u32 = 6;
export const CNT_UNLINK_PAGE: u32 = 7;
export const CNT_UNLINK_SUPER: u32 = 8;
/** Only the links into user code made stale (user epoch): by a switch or ASID fence, by a page fence. */
export const CNT_UNLINK_USER: u32 = 9;
export const CNT_UNLINK_PAGE_USER: u32 = 21;
/** LR, SC and AMOs translated code handed to the core (the inline fast path covers AMOs whose page the data TLB holds). */
export const CNT_JIT_AMO: u32 = 22;
/** CSR instructions translated code handed to the core. */
export const CNT_JIT_CSR: u32 = 23;
/** Traps, xRETs and fences ending a translated block (jitSystem), and how many went on into the next block from there. */
export const CNT_JIT_SYSTEM: u32 = 24;
export const CNT_JIT_ONWARD: u32 = 25;
/** sfence.vma of one page, of one ASID, of everything; page fences that had to flush everything (inside a superpage). */
export const CNT_FENCE_PAGE: u32 = 10;
export const CNT_FENCE_ASID: u32 = 11;
export const CNT_FENCE_ALL: u32 = 12;
export const CNT_FENCE_PAGE_FULL: u32 = 13;
/** satp writes, and those that changed it. */
export const CNT_SATP: u32 = 14;
export const CNT_SATP_CHANGE: u32 = 15;
/** Guest pages that got translated code (stores there now take the slow path), and pages whose translations a write retired. */
export const CNT_CODE_PROTECT: u32 = 16;
export const CNT_CODE_RETIRE: u32 = 17;
/** Instructions the interpreter ran inside a translated block on its behalf (CSR, AMO). */
export const CNT_JIT_INTERP: u32 = 18;
/** Interrupts taken, exceptions taken (all causes). */
export const CNT_TRAP_ENTRY: u32 = 19;
/** xRET executed. */
export const CNT_XRET: u32 = 20;

@inline export function count(i: u32): void {
  const a = stateAt() + SYS_COUNTS_OFF + (i << 3);
  store<u64>(a, load<u64>(a) + 1);
}

// Recording a synchronous exception. A leaf module (it needs only the hart's
// flags), so the MMU can raise faults without importing the trap handler,
// which itself refreshes the MMU's TLB sets on entry.

import { trapped } from './hart';

export let pendingCause: u64 = 0;
export let pendingTval: u64 = 0;

/** Record a synchronous exception for the current instruction. */
export function raiseException(cause: u32, tval: u64): void {
  if (trapped) return; // the first fault of an instruction wins
  trapped = true;
  pendingCause = cause;
  pendingTval = tval;
}

// ICMP: only echo requests to tsvisor's own addresses are answered.

import { finish, onesSum } from '../../common/checksum.js';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** Checks an ICMP message at b[off, off+len); returns a drop reason or null. */
export function checkIcmp(b: Uint8Array, off: number, len: number): string | null {
  if (len < 8) return 'icmp-truncated';
  if (onesSum(b, off, len) !== 0xffff) return 'icmp-checksum';
  return null;
}

/** Turns an echo request copied to out[off..] into the reply, in place. */
export function makeEchoReply(out: Uint8Array, off: number, len: number): void {
  out[off] = ICMP_ECHO_REPLY;
  out[off + 1] = 0;
  out[off + 2] = 0;
  out[off + 3] = 0;
  const c = finish(onesSum(out, off, len));
  out[off + 2] = c >>> 8;
  out[off + 3] = c & 0xff;
}

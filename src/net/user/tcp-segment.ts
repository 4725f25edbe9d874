// TCP segment parsing and header writing (RFC 9293). Options understood: MSS;
// window scaling and SACK are not negotiated (tsvisor never offers them), so
// the guest's are ignored.

import type { Ip4 } from './addr.js';
import { finish, onesSum, pseudoSum } from '../../common/checksum.js';
import { PROTO_TCP } from './ipv4.js';

export const TCP_HLEN = 20;
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;

export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** MSS option, or 0 when absent. */
  mss: number;
  /** Payload position in the frame. */
  off: number;
  len: number;
}

export function parseTcp(b: Uint8Array, off: number, ipLen: number, src: Ip4, dst: Ip4): TcpSegment | string {
  if (ipLen < TCP_HLEN) return 'tcp-truncated';
  const hlen = (b[off + 12] >>> 4) * 4;
  if (hlen < TCP_HLEN || hlen > ipLen) return 'tcp-bad-header-length';
  if (onesSum(b, off, ipLen, pseudoSum(src, dst, PROTO_TCP, ipLen)) !== 0xffff) return 'tcp-checksum';
  const flags = b[off + 13] & 0x3f;
  // Combinations no real stack sends; scanners and fuzzers do.
  if ((flags & (SYN | FIN)) === (SYN | FIN) || (flags & (SYN | RST)) === (SYN | RST)) return 'tcp-flags';
  if ((flags & (SYN | FIN | RST | ACK)) === 0) return 'tcp-flags';
  if ((flags & ACK) === 0 && (flags & SYN) === 0 && (flags & RST) === 0) return 'tcp-flags';
  const srcPort = (b[off] << 8) | b[off + 1];
  const dstPort = (b[off + 2] << 8) | b[off + 3];
  if (srcPort === 0 || dstPort === 0) return 'tcp-port-zero';
  let mss = 0;
  for (let i = off + TCP_HLEN, end = off + hlen; i < end; ) {
    const kind = b[i];
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= end) return 'tcp-bad-option';
    const olen = b[i + 1];
    if (olen < 2 || i + olen > end) return 'tcp-bad-option';
    if (kind === 2) {
      if (olen !== 4) return 'tcp-bad-option';
      mss = (b[i + 2] << 8) | b[i + 3];
    }
    i += olen;
  }
  return {
    srcPort,
    dstPort,
    seq: ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0,
    ack: ((b[off + 8] << 24) | (b[off + 9] << 16) | (b[off + 10] << 8) | b[off + 11]) >>> 0,
    flags,
    window: (b[off + 14] << 8) | b[off + 15],
    mss,
    off: off + hlen,
    len: ipLen - hlen,
  };
}

/**
 * Writes a TCP header at `off` (20 bytes, or 24 with an MSS option) for a payload
 * already in place after it, and the checksum over both.
 */
export function writeTcpHeader(
  b: Uint8Array, off: number, src: Ip4, dst: Ip4, srcPort: number, dstPort: number,
  seq: number, ack: number, flags: number, window: number, mssOption: number, payloadLen: number,
): number {
  const hlen = mssOption ? 24 : 20;
  b[off] = srcPort >>> 8;
  b[off + 1] = srcPort & 0xff;
  b[off + 2] = dstPort >>> 8;
  b[off + 3] = dstPort & 0xff;
  b[off + 4] = seq >>> 24; b[off + 5] = seq >>> 16; b[off + 6] = seq >>> 8; b[off + 7] = seq;
  b[off + 8] = ack >>> 24; b[off + 9] = ack >>> 16; b[off + 10] = ack >>> 8; b[off + 11] = ack;
  b[off + 12] = (hlen / 4) << 4;
  b[off + 13] = flags;
  b[off + 14] = window >>> 8;
  b[off + 15] = window & 0xff;
  b[off + 16] = 0; b[off + 17] = 0; b[off + 18] = 0; b[off + 19] = 0;
  if (mssOption) {
    b[off + 20] = 2; b[off + 21] = 4; b[off + 22] = mssOption >>> 8; b[off + 23] = mssOption & 0xff;
  }
  const len = hlen + payloadLen;
  const c = finish(onesSum(b, off, len, pseudoSum(src, dst, PROTO_TCP, len)));
  b[off + 16] = c >>> 8;
  b[off + 17] = c & 0xff;
  return hlen;
}

/** Sequence-space arithmetic: a - b as a signed 32-bit distance. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

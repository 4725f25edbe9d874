// UDP header parsing and checksums (RFC 768).

import type { Ip4 } from './addr.js';
import { finish, onesSum, pseudoSum } from '../../common/checksum.js';
import { PROTO_UDP } from './ipv4.js';

export const UDP_HLEN = 8;

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  off: number;
  len: number;
}

export function parseUdp(b: Uint8Array, off: number, ipLen: number, src: Ip4, dst: Ip4): UdpDatagram | string {
  if (ipLen < UDP_HLEN) return 'udp-truncated';
  const len = (b[off + 4] << 8) | b[off + 5];
  if (len < UDP_HLEN || len > ipLen) return 'udp-bad-length';
  const sum = (b[off + 6] << 8) | b[off + 7];
  // A zero checksum means the sender did not compute one (allowed over IPv4).
  if (sum !== 0 && onesSum(b, off, len, pseudoSum(src, dst, PROTO_UDP, len)) !== 0xffff) return 'udp-checksum';
  const srcPort = (b[off] << 8) | b[off + 1];
  const dstPort = (b[off + 2] << 8) | b[off + 3];
  if (srcPort === 0 || dstPort === 0) return 'udp-port-zero';
  return { srcPort, dstPort, off: off + UDP_HLEN, len: len - UDP_HLEN };
}

/** Writes the UDP header for a payload already at b[off+8 ...], with its checksum. */
export function writeUdpHeader(b: Uint8Array, off: number, src: Ip4, dst: Ip4, srcPort: number, dstPort: number, payloadLen: number): void {
  const len = UDP_HLEN + payloadLen;
  b[off] = srcPort >>> 8;
  b[off + 1] = srcPort & 0xff;
  b[off + 2] = dstPort >>> 8;
  b[off + 3] = dstPort & 0xff;
  b[off + 4] = len >>> 8;
  b[off + 5] = len & 0xff;
  b[off + 6] = 0;
  b[off + 7] = 0;
  let c = finish(onesSum(b, off, len, pseudoSum(src, dst, PROTO_UDP, len)));
  if (c === 0) c = 0xffff; // zero would mean "no checksum"
  b[off + 6] = c >>> 8;
  b[off + 7] = c & 0xff;
}

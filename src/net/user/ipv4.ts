// IPv4 header parsing (strict: the guest is untrusted) and writing.
// Fragments are dropped, not reassembled: guests use path MTU discovery
// and TCP segments that fit; datagrams over the MTU are rare enough to refuse.

import { readIp4, writeIp4, type Ip4 } from './addr.js';
import { finish, onesSum } from '../../common/checksum.js';

export const IP_HLEN = 20;
export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export interface Ip4Packet {
  src: Ip4;
  dst: Ip4;
  proto: number;
  /** Offset of the payload in the frame, and its length by the IP total length. */
  off: number;
  len: number;
}

/** Parses the IPv4 header at `off`; returns a drop reason on any inconsistency. */
export function parseIpv4(b: Uint8Array, off: number, frameLen: number): Ip4Packet | string {
  if (frameLen - off < IP_HLEN) return 'ip-truncated';
  const vihl = b[off];
  if (vihl >>> 4 !== 4) return 'ip-version';
  const ihl = (vihl & 15) * 4;
  if (ihl < IP_HLEN) return 'ip-bad-header-length';
  if (ihl > IP_HLEN) return 'ip-options';
  const total = (b[off + 2] << 8) | b[off + 3];
  // Frames may carry Ethernet padding after the datagram, never less than it says.
  if (total < ihl || total > frameLen - off) return 'ip-bad-length';
  if (onesSum(b, off, ihl) !== 0xffff) return 'ip-checksum';
  const frag = (b[off + 6] << 8) | b[off + 7];
  if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) return 'ip-fragment';
  return { src: readIp4(b, off + 12), dst: readIp4(b, off + 16), proto: b[off + 9], off: off + ihl, len: total - ihl };
}

/** Writes a 20-byte header with its checksum. */
export function writeIpv4(b: Uint8Array, off: number, src: Ip4, dst: Ip4, proto: number, payloadLen: number, id: number, dontFragment: boolean): void {
  const total = IP_HLEN + payloadLen;
  b[off] = 0x45;
  b[off + 1] = 0;
  b[off + 2] = total >>> 8;
  b[off + 3] = total & 0xff;
  b[off + 4] = (id >>> 8) & 0xff;
  b[off + 5] = id & 0xff;
  b[off + 6] = dontFragment ? 0x40 : 0;
  b[off + 7] = 0;
  b[off + 8] = 64;
  b[off + 9] = proto;
  b[off + 10] = 0;
  b[off + 11] = 0;
  writeIp4(b, off + 12, src);
  writeIp4(b, off + 16, dst);
  const c = finish(onesSum(b, off, IP_HLEN));
  b[off + 10] = c >>> 8;
  b[off + 11] = c & 0xff;
}

// ARP for IPv4 over Ethernet (RFC 826): tsvisor answers for the addresses it owns.

import { readIp4, writeIp4, type Ip4 } from './addr.js';
import { ETH_HLEN } from './ethernet.js';

export const ARP_LEN = 28;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export interface ArpPacket {
  op: number;
  senderMac: Uint8Array; // a view into the frame
  senderIp: Ip4;
  targetIp: Ip4;
}

export function parseArp(b: Uint8Array, frameLen: number): ArpPacket | string {
  const o = ETH_HLEN;
  if (frameLen - o < ARP_LEN) return 'arp-truncated';
  if (b[o] !== 0 || b[o + 1] !== 1 || b[o + 2] !== 8 || b[o + 3] !== 0 || b[o + 4] !== 6 || b[o + 5] !== 4) return 'arp-unsupported';
  const op = (b[o + 6] << 8) | b[o + 7];
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return 'arp-unsupported';
  return { op, senderMac: b.subarray(o + 8, o + 14), senderIp: readIp4(b, o + 14), targetIp: readIp4(b, o + 24) };
}

/** Writes the ARP body (after the Ethernet header). */
export function writeArp(b: Uint8Array, op: number, senderMac: Uint8Array, senderIp: Ip4, targetMac: Uint8Array, targetIp: Ip4): void {
  const o = ETH_HLEN;
  b[o] = 0; b[o + 1] = 1; b[o + 2] = 8; b[o + 3] = 0; b[o + 4] = 6; b[o + 5] = 4;
  b[o + 6] = 0; b[o + 7] = op;
  b.set(senderMac, o + 8);
  writeIp4(b, o + 14, senderIp);
  b.set(targetMac, o + 18);
  writeIp4(b, o + 24, targetIp);
}

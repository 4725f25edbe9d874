// Frames toward the guest are assembled in one reusable buffer: the backend's
// toGuest callback copies each frame before returning, so nothing is allocated
// per frame.

import { BROADCAST_MAC, type Ip4 } from './addr.js';
import { ARP_REQUEST, ARP_LEN, writeArp } from './arp.js';
import { ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, MAX_FRAME, writeEth } from './ethernet.js';
import { IP_HLEN, PROTO_UDP, writeIpv4 } from './ipv4.js';
import { UDP_HLEN, writeUdpHeader } from './udp.js';

/** Where the transport header starts in the output buffer. */
export const L4_OFF = ETH_HLEN + IP_HLEN;
/** Largest UDP payload that fits a 1500-byte MTU without fragmentation. */
export const MAX_UDP_PAYLOAD = 1500 - IP_HLEN - UDP_HLEN;

export class Output {
  toGuest: ((frame: Uint8Array) => void) | null = null;
  /** The guest's MAC, learned from its frames; null until it has sent one. */
  guestMac: Uint8Array | null = null;
  readonly buf = new Uint8Array(MAX_FRAME);
  frames = 0;
  bytes = 0;
  private ipId = 1;

  constructor(readonly ourMac: Uint8Array, private readonly ourIp: Ip4) {}

  /** Hands buf[0, len) to the guest. */
  send(len: number): void {
    if (!this.toGuest) return;
    this.frames++;
    this.bytes += len;
    this.toGuest(this.buf.subarray(0, len));
  }

  /**
   * Wraps the transport bytes already at buf[L4_OFF, L4_OFF + l4Len) in IPv4 and
   * Ethernet headers and sends them. Without a known guest MAC there is no one to
   * address, so an ARP request goes out instead and the frame is lost (TCP
   * retransmits; the guest's own traffic teaches us its MAC first in practice).
   */
  sendIp(src: Ip4, dst: Ip4, proto: number, l4Len: number, dontFragment: boolean, toMac?: Uint8Array): void {
    const mac = toMac ?? this.guestMac;
    if (!mac) {
      this.arpRequest(dst);
      return;
    }
    writeIpv4(this.buf, ETH_HLEN, src, dst, proto, l4Len, this.ipId, dontFragment);
    this.ipId = (this.ipId + 1) & 0xffff;
    writeEth(this.buf, mac, this.ourMac, ETHERTYPE_IPV4);
    this.send(L4_OFF + l4Len);
  }

  sendUdp(src: Ip4, dst: Ip4, srcPort: number, dstPort: number, payload: Uint8Array, toMac?: Uint8Array): void {
    if (payload.length > MAX_UDP_PAYLOAD) return;
    this.buf.set(payload, L4_OFF + UDP_HLEN);
    writeUdpHeader(this.buf, L4_OFF, src, dst, srcPort, dstPort, payload.length);
    this.sendIp(src, dst, PROTO_UDP, UDP_HLEN + payload.length, false, toMac);
  }

  arpRequest(target: Ip4): void {
    writeEth(this.buf, BROADCAST_MAC, this.ourMac, ETHERTYPE_ARP);
    writeArp(this.buf, ARP_REQUEST, this.ourMac, this.ourIp, new Uint8Array(6), target);
    this.send(ETH_HLEN + ARP_LEN);
  }

  /** A minimum-size frame is padded to 60 bytes as on a real wire. */
  sendArpReply(dstMac: Uint8Array, senderMac: Uint8Array, senderIp: Ip4, targetIp: Ip4): void {
    writeEth(this.buf, dstMac, this.ourMac, ETHERTYPE_ARP);
    writeArp(this.buf, 2, senderMac, senderIp, dstMac, targetIp);
    this.buf.fill(0, ETH_HLEN + ARP_LEN, 60);
    this.send(60);
  }
}



// Transmit offloads of virtio-net, done by the device as a NIC would: the
// checksum the driver left for us (VIRTIO_NET_F_CSUM: sum from csum_start to
// the end, stored at csum_start + csum_offset) and TCP segmentation of a large
// IPv4 frame into MSS-sized ones (VIRTIO_NET_F_HOST_TSO4). With them the guest
// kernel hands over 64 KiB at a time and never checksums its own payload,
// which is most of its work per byte. Every length is checked: a frame that
// lies about its headers is dropped, never trusted.

import { onesSum } from '../../common/checksum.js';

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

export interface NetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export function parseNetHdr(h: Uint8Array): NetHdr {
  const u16 = (o: number) => h[o] | (h[o + 1] << 8);
  return { flags: h[0], gsoType: h[1], hdrLen: u16(2), gsoSize: u16(4), csumStart: u16(6), csumOffset: u16(8) };
}

/** Checksum over frame[start, end) folded into the 16-bit field at `at` (which holds the pseudo-header sum). */
function fillChecksum(frame: Uint8Array, start: number, at: number): void {
  const s = onesSum(frame, start, frame.length - start);
  const c = ~s & 0xffff;
  frame[at] = c >> 8;
  frame[at + 1] = c & 0xff;
}

const ETH_HLEN = 14;
const MIN_MSS = 64;

/**
 * Apply the offloads the header asks for and pass the resulting frame(s) to
 * `emit` (each valid only during the call). Returns why the frame was dropped,
 * or null. `frame` is a private copy the function may modify.
 */
export function transmitWithOffloads(frame: Uint8Array, hdr: NetHdr, maxFrame: number, emit: (f: Uint8Array) => void): string | null {
  const gso = hdr.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
  if (gso === VIRTIO_NET_HDR_GSO_NONE) {
    if (frame.length > maxFrame) return 'oversized frame';
    if (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      const at = hdr.csumStart + hdr.csumOffset;
      if (hdr.csumStart < ETH_HLEN || at + 2 > frame.length) return 'checksum offsets outside the frame';
      fillChecksum(frame, hdr.csumStart, at);
    }
    emit(frame);
    return null;
  }
  if (gso !== VIRTIO_NET_HDR_GSO_TCPV4) return `unsupported segmentation type ${hdr.gsoType}`;
  return segmentTcp4(frame, hdr, maxFrame, emit);
}

function segmentTcp4(frame: Uint8Array, hdr: NetHdr, maxFrame: number, emit: (f: Uint8Array) => void): string | null {
  if (frame.length < ETH_HLEN + 40) return 'segmentation request on a runt frame';
  if (frame[12] !== 0x08 || frame[13] !== 0x00) return 'TCPv4 segmentation of a frame that is not IPv4';
  const ip = ETH_HLEN;
  const ihl = (frame[ip] & 0x0f) * 4;
  if (frame[ip] >> 4 !== 4 || ihl < 20) return 'bad IPv4 header in a segmentation request';
  if (frame[ip + 9] !== 6) return 'TCPv4 segmentation of a packet that is not TCP';
  const tcp = ip + ihl;
  if (tcp + 20 > frame.length) return 'TCP header outside the frame';
  const doff = (frame[tcp + 12] >> 4) * 4;
  if (doff < 20) return 'bad TCP header length';
  const payloadAt = tcp + doff;
  if (payloadAt > frame.length) return 'TCP header outside the frame';
  const mss = hdr.gsoSize;
  if (mss < MIN_MSS || payloadAt + mss > maxFrame) return `bad segment size ${mss}`;
  const payload = frame.length - payloadAt;
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const id0 = dv.getUint16(ip + 4);
  const seq0 = dv.getUint32(tcp + 4);
  const flags = frame[tcp + 13];
  const FIN = 0x01;
  const PSH = 0x08;
  const CWR = 0x80;
  const segs = Math.max(1, Math.ceil(payload / mss));
  const out = new Uint8Array(payloadAt + mss);
  for (let i = 0; i < segs; i++) {
    const off = i * mss;
    const len = Math.min(mss, payload - off);
    const seg = out.subarray(0, payloadAt + len);
    seg.set(frame.subarray(0, payloadAt));
    seg.set(frame.subarray(payloadAt + off, payloadAt + off + len), payloadAt);
    const sv = new DataView(seg.buffer, seg.byteOffset, seg.byteLength);
    const totalLen = ihl + doff + len;
    sv.setUint16(ip + 2, totalLen);
    sv.setUint16(ip + 4, (id0 + i) & 0xffff);
    sv.setUint16(ip + 10, 0);
    sv.setUint16(ip + 10, ~onesSum(seg, ip, ihl) & 0xffff);
    sv.setUint32(tcp + 4, (seq0 + off) >>> 0);
    let f = flags;
    if (i < segs - 1) f &= ~(FIN | PSH);
    if (i > 0) f &= ~CWR;
    seg[tcp + 13] = f;
    // The TCP checksum from scratch: pseudo header (addresses, protocol, length) and the segment.
    const tcpLen = doff + len;
    let ph = onesSum(seg, ip + 12, 8);
    ph = onesSum(Uint8Array.of(0, 6, tcpLen >> 8, tcpLen & 0xff), 0, 4, ph);
    sv.setUint16(tcp + 16, 0);
    const c = ~onesSum(seg, tcp, tcpLen, ph) & 0xffff;
    sv.setUint16(tcp + 16, c);
    emit(seg);
  }
  return null;
}

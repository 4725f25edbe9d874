// Ethernet II framing. Frames arrive without the virtio-net header and without FCS.

export const ETH_HLEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
/** 1514 bytes plus room for one VLAN tag; anything longer is hostile. */
export const MAX_FRAME = 1518;

export function writeEth(b: Uint8Array, dst: Uint8Array, src: Uint8Array, type: number): void {
  b.set(dst, 0);
  b.set(src, 6);
  b[12] = type >>> 8;
  b[13] = type & 0xff;
}

export function isMulticastMac(b: Uint8Array, off: number): boolean {
  return (b[off] & 1) === 1;
}

// MAC addresses: parsing, printing, and the stable default of a VM's NIC.

import { createHash, randomBytes } from 'node:crypto';

export function parseMac(text: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (!m) return null;
  const mac = Uint8Array.from(m.slice(1).map((h) => parseInt(h, 16)));
  if (mac[0] & 1) return null; // a multicast address cannot be a NIC's own
  return mac;
}

export function formatMac(mac: ArrayLike<number>): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * A locally administered unicast MAC derived from the VM's name and the NIC's
 * index: the same VM keeps its address (and its DHCP lease) across runs.
 * The 52:54:00 prefix is the one QEMU users recognise.
 */
export function defaultMac(vmName: string, index: number): Uint8Array {
  const h = createHash('sha256').update(`${vmName}\0${index}`).digest();
  return Uint8Array.of(0x52, 0x54, 0x00, h[0], h[1], h[2]);
}

/** A clone's MAC: the default of its name when it has one, else a random locally administered one. */
export function cloneMac(name: string | undefined, index: number): Uint8Array {
  if (name !== undefined) return defaultMac(name, index);
  const r = randomBytes(3);
  return Uint8Array.of(0x52, 0x54, 0x00, r[0], r[1], r[2]);
}

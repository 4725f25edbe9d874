// IPv4 addresses are unsigned 32-bit numbers inside the stack; MACs are 6-byte arrays.

export type Ip4 = number;

export function parseIp4(s: string): Ip4 | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const n = Number(m[i]);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v;
}

export function ip4ToString(ip: Ip4): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export interface Cidr {
  addr: Ip4;
  prefix: number;
}

/** "a.b.c.d/n" (or a bare address, taken as /32 unless defaultPrefix says otherwise). */
export function parseCidr(s: string, defaultPrefix = 32): Cidr | null {
  const slash = s.indexOf('/');
  const ip = parseIp4(slash < 0 ? s : s.slice(0, slash));
  if (ip === null) return null;
  let prefix = defaultPrefix;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,2}$/.test(p) || Number(p) > 32) return null;
    prefix = Number(p);
  }
  return { addr: (ip & prefixMask(prefix)) >>> 0, prefix };
}

export function inCidr(ip: Ip4, c: Cidr): boolean {
  const m = prefixMask(c.prefix);
  return ((ip & m) >>> 0) === c.addr;
}

export function readIp4(b: Uint8Array, off: number): Ip4 {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

export function writeIp4(b: Uint8Array, off: number, ip: Ip4): void {
  b[off] = ip >>> 24;
  b[off + 1] = ip >>> 16;
  b[off + 2] = ip >>> 8;
  b[off + 3] = ip;
}

export function macToString(m: Uint8Array): string {
  return Array.from(m, (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(s: string): Uint8Array | null {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(s);
  if (!m) return null;
  return Uint8Array.from(m.slice(1), (x) => parseInt(x, 16));
}

export const BROADCAST_MAC = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

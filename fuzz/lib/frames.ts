// Repairs the parts of a fuzzed Ethernet frame that random mutation almost never
// gets right (IPv4 total length, header and TCP/UDP/ICMP checksums), so the
// fuzzer reaches the protocol logic behind them. Independent of the stack's own
// checksum code on purpose.

function sum16(b: Uint8Array, off: number, end: number, acc: number): number {
  let s = acc;
  for (let i = off; i < end; i += 2) s += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  return s;
}

function finish(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

const put16 = (b: Uint8Array, off: number, v: number) => {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
};

/** Fix in place. `fixLength`: IPv4 total length = what the frame holds. `fixL4`: the TCP/UDP/ICMP checksum too. */
export function fixIpv4Frame(f: Uint8Array, fixLength: boolean, fixL4: boolean): void {
  if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return;
  const ihl = (f[14] & 0x0f) * 4;
  if (ihl < 20 || 14 + ihl > f.length) return;
  if (fixLength) put16(f, 16, f.length - 14);
  put16(f, 24, 0);
  put16(f, 24, finish(sum16(f, 14, 14 + ihl, 0)));
  if (!fixL4) return;
  const total = Math.min((f[16] << 8) | f[17], f.length - 14);
  const l4 = 14 + ihl;
  const l4len = total - ihl;
  if (l4len < 0) return;
  const proto = f[23];
  const pseudo = sum16(f, 26, 34, proto + l4len);
  if (proto === 6 && l4len >= 20) {
    put16(f, l4 + 16, 0);
    put16(f, l4 + 16, finish(sum16(f, l4, l4 + l4len, pseudo)));
  } else if (proto === 17 && l4len >= 8) {
    put16(f, l4 + 4, l4len);
    put16(f, l4 + 6, 0);
    const c = finish(sum16(f, l4, l4 + l4len, pseudo));
    put16(f, l4 + 6, c === 0 ? 0xffff : c);
  } else if (proto === 1 && l4len >= 4) {
    put16(f, l4 + 2, 0);
    put16(f, l4 + 2, finish(sum16(f, l4, l4 + l4len, 0)));
  }
}

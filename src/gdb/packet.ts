// GDB remote serial protocol framing: `$data#cs` packets, `+`/`-`
// acknowledgements and the out-of-band interrupt byte 0x03. Pure: bytes in,
// events out; packet data are latin1 strings (one char per byte), so binary
// payloads (X packets) pass through unchanged.

/** Largest packet accepted (qSupported announces it); longer input is dropped with an error event. */
export const PACKET_MAX = 0x4000;

export type GdbInput =
  | { kind: 'packet'; data: string }
  | { kind: 'interrupt' }
  | { kind: 'ack' }
  | { kind: 'nack' }
  /** A packet with a wrong checksum (answered with `-` in ack mode) or one too long. */
  | { kind: 'bad'; reason: string };

export function checksum(s: string): number {
  let c = 0;
  for (let i = 0; i < s.length; i++) c = (c + s.charCodeAt(i)) & 0xff;
  return c;
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** Frame a reply. `#`, `$`, `}` and `*` (run-length marker) are escaped as `}` + (byte ^ 0x20). */
export function encodePacket(data: string): string {
  let body = '';
  for (let i = 0; i < data.length; i++) {
    const ch = data[i];
    body += ch === '#' || ch === '$' || ch === '}' || ch === '*' ? '}' + String.fromCharCode(ch.charCodeAt(0) ^ 0x20) : ch;
  }
  return `$${body}#${hex2(checksum(body))}`;
}

/** Undo `}` escaping of binary packet data (X packets). */
export function unescapeBinary(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '}' && i + 1 < s.length) out += String.fromCharCode(s.charCodeAt(++i) ^ 0x20);
    else out += s[i];
  }
  return out;
}

/** Splits a byte stream from GDB into events; keeps partial packets between calls. */
export class PacketReader {
  private state: 'idle' | 'data' | 'cs1' | 'cs2' = 'idle';
  private data = '';
  private cs = '';
  private overflow = false;

  push(bytes: Uint8Array): GdbInput[] {
    const out: GdbInput[] = [];
    for (const b of bytes) {
      const ch = String.fromCharCode(b);
      switch (this.state) {
        case 'idle':
          if (b === 0x03) out.push({ kind: 'interrupt' });
          else if (ch === '+') out.push({ kind: 'ack' });
          else if (ch === '-') out.push({ kind: 'nack' });
          else if (ch === '$') {
            this.state = 'data';
            this.data = '';
            this.overflow = false;
          }
          break; // anything else between packets is noise
        case 'data':
          if (ch === '#') this.state = 'cs1';
          else if (this.data.length < PACKET_MAX) this.data += ch;
          else this.overflow = true;
          break;
        case 'cs1':
          this.cs = ch;
          this.state = 'cs2';
          break;
        case 'cs2': {
          this.cs += ch;
          this.state = 'idle';
          const want = parseInt(this.cs, 16);
          if (this.overflow) out.push({ kind: 'bad', reason: `packet longer than ${PACKET_MAX} bytes` });
          else if (!/^[0-9a-fA-F]{2}$/.test(this.cs) || want !== checksum(this.data)) out.push({ kind: 'bad', reason: 'checksum mismatch' });
          else out.push({ kind: 'packet', data: this.data });
          this.data = '';
          break;
        }
      }
    }
    return out;
  }
}

/** Bytes <-> hex text as GDB writes them (two lowercase digits per byte). */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += hex2(b);
  return s;
}

export function fromHex(s: string): Uint8Array | null {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A 64-bit register value in target (little-endian) byte order, as hex. */
export function regToHex(v: bigint, bytes = 8): string {
  const b = new Uint8Array(bytes);
  let x = BigInt.asUintN(bytes * 8, v);
  for (let i = 0; i < bytes; i++) {
    b[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return toHex(b);
}

export function regFromHex(s: string): bigint | null {
  const b = fromHex(s);
  if (!b || b.length === 0 || b.length > 8) return null;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  return v;
}

/** Text as the hex GDB expects in `O` packets and qRcmd replies. */
export function textToHex(s: string): string {
  return toHex(new TextEncoder().encode(s));
}

/**
 * The transport's side of acknowledgement: it answers `+` (or `-` for a bad
 * checksum) to every packet as soon as the bytes arrive, until GDB turns
 * acknowledgements off with QStartNoAckMode. The stub behind it (which may
 * answer only between two slices of guest execution) then never acknowledges,
 * and GDB never retransmits a packet the stub is still working on.
 */
export class Acknowledger {
  private readonly reader = new PacketReader();
  private acking = true;

  /** Bytes to send back to GDB at once for these bytes from it. */
  input(bytes: Uint8Array): string {
    if (!this.acking) return '';
    let out = '';
    for (const ev of this.reader.push(bytes)) {
      if (!this.acking) break;
      if (ev.kind === 'packet') {
        out += '+';
        if (ev.data === 'QStartNoAckMode') this.acking = false;
      } else if (ev.kind === 'bad') {
        out += '-';
      }
    }
    return out;
  }
}

// A flattened device tree (DTB) builder: build a tree of nodes and properties,
// then serialise it as a version 17 blob (header, memory reservation block,
// structure block, strings block with each property name stored once).

// ---- Format constants ----
export const FDT_MAGIC = 0xd00dfeed;
export const FDT_VERSION = 17;
export const FDT_LAST_COMP_VERSION = 16;
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;
const HEADER_SIZE = 40;

/** UTF-8 encoding (kept local so this module needs no host globals). */
function utf8(s: string): number[] {
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return out;
}

/** A 64-bit value: a non-negative safe integer or a bigint below 2^64. */
export type U64 = number | bigint;

function checkU32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`fdt: ${name}: ${v} is not a u32`);
  return v;
}

function toBig64(name: string, v: U64): bigint {
  const b = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : -1n;
  if (b < 0n || b > 0xffff_ffff_ffff_ffffn) throw new RangeError(`fdt: ${name}: ${String(v)} is not a u64`);
  return b;
}

function cstr(name: string, s: string): Uint8Array {
  if (s.includes('\0')) throw new RangeError(`fdt: ${name}: string contains NUL`);
  const b = utf8(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** Node names: 1..31 chars of [A-Za-z0-9,._+-] then an optional @unit-address. */
const NODE_NAME = /^[A-Za-z0-9,._+-]{1,31}(@[A-Za-z0-9,._+-]+)?$/;
/** Property names: 1..31 chars of [A-Za-z0-9,._+?#-]. */
const PROP_NAME = /^[A-Za-z0-9,._+?#-]{1,31}$/;

/** One node. Setters replace a property of the same name and return the node for chaining. */
export class FdtNode {
  readonly name: string;
  private readonly props = new Map<string, Uint8Array>();
  private readonly kids: FdtNode[] = [];
  /** Assigned by Fdt.phandle(). */
  phandleValue = 0;

  constructor(name: string) {
    this.name = name;
  }

  get children(): readonly FdtNode[] {
    return this.kids;
  }

  get properties(): ReadonlyMap<string, Uint8Array> {
    return this.props;
  }

  /** Add a child node; names must be unique among siblings. */
  addChild(name: string): FdtNode {
    if (!NODE_NAME.test(name)) throw new RangeError(`fdt: bad node name "${name}"`);
    if (this.kids.some((k) => k.name === name)) throw new RangeError(`fdt: duplicate node "${name}"`);
    const n = new FdtNode(name);
    this.kids.push(n);
    return n;
  }

  child(name: string): FdtNode | undefined {
    return this.kids.find((k) => k.name === name);
  }

  /** Raw property bytes. */
  bytes(name: string, value: Uint8Array): this {
    if (!PROP_NAME.test(name)) throw new RangeError(`fdt: bad property name "${name}"`);
    this.props.set(name, value.slice());
    return this;
  }

  /** Empty (boolean) property, e.g. `interrupt-controller`. */
  empty(name: string): this {
    return this.bytes(name, new Uint8Array(0));
  }

  u32(name: string, v: number): this {
    return this.u32s(name, [v]);
  }

  /** A list of big-endian 32-bit cells. */
  u32s(name: string, vs: readonly number[]): this {
    const out = new Uint8Array(vs.length * 4);
    const dv = new DataView(out.buffer);
    vs.forEach((v, i) => dv.setUint32(i * 4, checkU32(name, v)));
    return this.bytes(name, out);
  }

  u64(name: string, v: U64): this {
    return this.u64s(name, [v]);
  }

  /** A list of 64-bit values, each as two cells (high, low). */
  u64s(name: string, vs: readonly U64[]): this {
    const out = new Uint8Array(vs.length * 8);
    const dv = new DataView(out.buffer);
    vs.forEach((v, i) => dv.setBigUint64(i * 8, toBig64(name, v)));
    return this.bytes(name, out);
  }

  string(name: string, s: string): this {
    return this.bytes(name, cstr(name, s));
  }

  /** A string list: each string NUL-terminated, concatenated. */
  strings(name: string, ss: readonly string[]): this {
    const parts = ss.map((s) => cstr(name, s));
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return this.bytes(name, out);
  }
}

export interface FdtReservation {
  address: U64;
  size: U64;
}

export interface FdtSerializeOptions {
  /** Extra free bytes counted in totalsize, so firmware can edit the tree in place. */
  padding?: number;
  /** Physical id of the boot CPU (header field). */
  bootCpuId?: number;
}

/** A device tree: a root node, phandle allocation and the memory reservation list. */
export class Fdt {
  readonly root = new FdtNode('');
  readonly reservations: FdtReservation[] = [];
  private nextPhandle = 1;

  /** The phandle of `node`, allocating one (and its `phandle` property) on first use. */
  phandle(node: FdtNode): number {
    if (node.phandleValue === 0) {
      node.phandleValue = this.nextPhandle++;
      node.u32('phandle', node.phandleValue);
    }
    return node.phandleValue;
  }

  /** Serialise to a DTB. */
  serialize(opts: FdtSerializeOptions = {}): Uint8Array {
    const padding = opts.padding ?? 0;
    if (!Number.isInteger(padding) || padding < 0) throw new RangeError(`fdt: bad padding ${padding}`);

    // Strings block: each property name once.
    const stringOffsets = new Map<string, number>();
    const stringParts: Uint8Array[] = [];
    let stringsSize = 0;
    const nameOff = (name: string): number => {
      let off = stringOffsets.get(name);
      if (off === undefined) {
        off = stringsSize;
        const b = cstr(name, name);
        stringOffsets.set(name, off);
        stringParts.push(b);
        stringsSize += b.length;
      }
      return off;
    };

    // Structure block.
    const words: Uint8Array[] = [];
    let structSize = 0;
    const push = (b: Uint8Array): void => {
      const padded = (b.length + 3) & ~3;
      const out = new Uint8Array(padded);
      out.set(b);
      words.push(out);
      structSize += padded;
    };
    const token = (t: number, ...extra: number[]): void => {
      const b = new Uint8Array(4 * (1 + extra.length));
      const dv = new DataView(b.buffer);
      dv.setUint32(0, t);
      extra.forEach((x, i) => dv.setUint32(4 * (i + 1), x));
      push(b);
    };
    const emit = (node: FdtNode): void => {
      token(FDT_BEGIN_NODE);
      push(cstr('node name', node.name));
      for (const [name, value] of node.properties) {
        token(FDT_PROP, value.length, nameOff(name));
        push(value);
      }
      for (const k of node.children) emit(k);
      token(FDT_END_NODE);
    };
    emit(this.root);
    token(FDT_END);

    const rsvOff = HEADER_SIZE; // already 8-aligned
    const rsvSize = (this.reservations.length + 1) * 16;
    const structOff = rsvOff + rsvSize;
    const stringsOff = structOff + structSize;
    const totalSize = stringsOff + stringsSize + padding;

    const out = new Uint8Array(totalSize);
    const dv = new DataView(out.buffer);
    const header = [
      FDT_MAGIC,
      totalSize,
      structOff,
      stringsOff,
      rsvOff,
      FDT_VERSION,
      FDT_LAST_COMP_VERSION,
      checkU32('boot cpu', opts.bootCpuId ?? 0),
      stringsSize,
      structSize,
    ];
    header.forEach((v, i) => dv.setUint32(i * 4, v));
    this.reservations.forEach((r, i) => {
      dv.setBigUint64(rsvOff + i * 16, toBig64('reservation address', r.address));
      dv.setBigUint64(rsvOff + i * 16 + 8, toBig64('reservation size', r.size));
    });
    let o = structOff;
    for (const w of words) {
      out.set(w, o);
      o += w.length;
    }
    for (const s of stringParts) {
      out.set(s, o);
      o += s.length;
    }
    return out;
  }
}

// A small WebAssembly binary builder: enough to emit modules of translated
// blocks. It knows nothing about RISC-V.

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F32 = 0x7d;
export const F64 = 0x7c;

export const OP = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, br_if: 0x0d,
  br_table: 0x0e, return: 0x0f, call: 0x10, return_call: 0x12, return_call_indirect: 0x13, drop: 0x1a, select: 0x1b,
  local_get: 0x20, local_set: 0x21, local_tee: 0x22, global_get: 0x23,
  i32_load: 0x28, i64_load: 0x29, i32_load8_u: 0x2d, i64_load8_s: 0x30, i64_load8_u: 0x31,
  i64_load16_s: 0x32, i64_load16_u: 0x33, i64_load32_s: 0x34, i64_load32_u: 0x35,
  i32_store: 0x36, i64_store: 0x37, i64_store8: 0x3c, i64_store16: 0x3d, i64_store32: 0x3e,
  i32_const: 0x41, i64_const: 0x42,
  i32_eqz: 0x45, i32_eq: 0x46, i32_ne: 0x47, i32_le_u: 0x4d, i32_and: 0x71, i32_or: 0x72, i32_add: 0x6a,
  i64_eqz: 0x50, i64_eq: 0x51, i64_ne: 0x52, i64_lt_s: 0x53, i64_lt_u: 0x54, i64_gt_s: 0x55, i64_gt_u: 0x56,
  i64_le_s: 0x57, i64_le_u: 0x58, i64_ge_s: 0x59, i64_ge_u: 0x5a,
  i64_add: 0x7c, i64_sub: 0x7d, i64_mul: 0x7e, i64_div_s: 0x7f, i64_div_u: 0x80, i64_rem_s: 0x81,
  i64_rem_u: 0x82, i64_and: 0x83, i64_or: 0x84, i64_xor: 0x85, i64_shl: 0x86, i64_shr_s: 0x87, i64_shr_u: 0x88,
  i32_wrap_i64: 0xa7, i64_extend_i32_s: 0xac, i64_extend_i32_u: 0xad,
  i32_shl: 0x74, i32_shr_s: 0x75, i32_shr_u: 0x76, i32_sub: 0x6b, i32_mul: 0x6c, i32_xor: 0x73,
  i64_extend32_s: 0xc4,
  f32_load: 0x2a, f64_load: 0x2b, f64_store: 0x39, f64_const: 0x44, f32_sqrt: 0x91, f64_sqrt: 0x9f,
  f64_eq: 0x61, f64_ne: 0x62, f64_lt: 0x63, f64_gt: 0x64, f64_le: 0x65, f64_ge: 0x66,
  f32_neg: 0x8c, f32_add: 0x92, f32_sub: 0x93, f32_mul: 0x94, f32_div: 0x95,
  f64_abs: 0x99, f64_neg: 0x9a, f64_ceil: 0x9b, f64_floor: 0x9c, f64_trunc: 0x9d, f64_nearest: 0x9e,
  i64_trunc_f64_s: 0xb0, i64_trunc_f64_u: 0xb1, f64_add: 0xa0, f64_sub: 0xa1, f64_mul: 0xa2, f64_div: 0xa3, f64_min: 0xa4, f64_max: 0xa5,
  f32_demote_f64: 0xb6, f64_promote_f32: 0xbb, f64_convert_i64_s: 0xb9, f64_convert_i64_u: 0xba,
  i32_reinterpret_f32: 0xbc, i64_reinterpret_f64: 0xbd, f32_reinterpret_i32: 0xbe, f64_reinterpret_i64: 0xbf,
  i32_lt_u: 0x49, i32_gt_u: 0x4b, i32_ge_u: 0x4f,
} as const;

/** Prefix of the threads proposal's instructions (atomics, fence), each followed by its sub-opcode. */
export const ATOMIC_PREFIX = 0xfe;

/**
 * Sub-opcodes after ATOMIC_PREFIX. The read-modify-write groups come in seven
 * widths in this order: i32, i64, i32 8-bit, i32 16-bit, i64 8-bit, i64 16-bit,
 * i64 32-bit; only the full and the i64 32-bit forms are needed here.
 */
export const ATOMIC = {
  fence: 0x03,
  i64_load: 0x11, i64_load32_u: 0x16,
  i64_rmw_add: 0x1f, i64_rmw32_add_u: 0x24,
  i64_rmw_and: 0x2d, i64_rmw32_and_u: 0x32,
  i64_rmw_or: 0x34, i64_rmw32_or_u: 0x39,
  i64_rmw_xor: 0x3b, i64_rmw32_xor_u: 0x40,
  i64_rmw_xchg: 0x42, i64_rmw32_xchg_u: 0x47,
  i64_rmw_cmpxchg: 0x49, i64_rmw32_cmpxchg_u: 0x4e,
} as const;

/** Largest memory a module may import (4 GiB); asconfig.json declares the same for the core. */
export const MAX_MEMORY_PAGES = 65536;

export class ByteWriter {
  private buf = new Uint8Array(256);
  length = 0;

  byte(b: number): this {
    if (this.length === this.buf.length) {
      const n = new Uint8Array(this.buf.length * 2);
      n.set(this.buf);
      this.buf = n;
    }
    this.buf[this.length++] = b & 0xff;
    return this;
  }
  bytes(bs: ArrayLike<number>): this {
    if (bs instanceof Uint8Array) {
      // Whole function bodies pass through here: copy in one go.
      let cap = this.buf.length;
      while (cap < this.length + bs.length) cap *= 2;
      if (cap !== this.buf.length) {
        const n = new Uint8Array(cap);
        n.set(this.buf.subarray(0, this.length));
        this.buf = n;
      }
      this.buf.set(bs, this.length);
      this.length += bs.length;
      return this;
    }
    for (let i = 0; i < bs.length; i++) this.byte(bs[i]);
    return this;
  }
  u32(v: number): this {
    v >>>= 0;
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }
  i32(v: number): this {
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }
  i64(v: bigint): this {
    v = BigInt.asIntN(64, v);
    if (v >= -0x10000000000000n && v <= 0x10000000000000n) {
      // Most constants (pcs, immediates) fit a double exactly: no BigInt work per byte.
      let n = Number(v);
      for (;;) {
        const b = n & 0x7f; // ToInt32 keeps the low bits of a negative n too
        n = Math.floor(n / 128);
        if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return this.byte(b);
        this.byte(b | 0x80);
      }
    }
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }
  /** An unsigned LEB128 of exactly two bytes (v < 16384), to be patched later with patchU32x2. */
  u32x2(v: number): this {
    return this.byte(0x80 | (v & 0x7f)).byte((v >>> 7) & 0x7f);
  }
  /** Overwrite the two-byte LEB128 written by u32x2 at `at`. */
  patchU32x2(at: number, v: number): void {
    if (v >>> 14 !== 0) throw new Error(`patchU32x2: ${v} does not fit two bytes`);
    this.buf[at] = 0x80 | (v & 0x7f);
    this.buf[at + 1] = (v >>> 7) & 0x7f;
  }
  name(s: string): this {
    const enc = new TextEncoder().encode(s);
    this.u32(enc.length);
    return this.bytes(enc);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export interface FuncType {
  params: number[];
  results: number[];
}

export interface ImportFunc {
  module: string;
  name: string;
  type: number;
}

export interface FuncBody {
  type: number;
  /** Extra locals as [count, type] groups. */
  locals: [number, number][];
  code: Uint8Array;
  exportName?: string;
}

/**
 * Assemble a module: imported memory env.memory, optionally table env.table,
 * imported functions, imported immutable i32 globals env.<name> (global index
 * in the order given), defined functions.
 */
export function buildModule(types: FuncType[], imports: ImportFunc[], funcs: FuncBody[], importTable = false, globals: readonly string[] = []): Uint8Array {
  const out = new ByteWriter().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, body: ByteWriter) => {
    const b = body.finish();
    out.byte(id).u32(b.length).bytes(b);
  };
  const t = new ByteWriter().u32(types.length);
  for (const ft of types) {
    t.byte(0x60).u32(ft.params.length).bytes(ft.params).u32(ft.results.length).bytes(ft.results);
  }
  section(1, t);
  const im = new ByteWriter().u32(imports.length + globals.length + (importTable ? 2 : 1));
  // The core's memory is shared (harts may run on several threads): a shared
  // import must say so and have a maximum; 65536 pages admits any size.
  im.name('env').name('memory').byte(0x02).byte(0x03).u32(1).u32(MAX_MEMORY_PAGES);
  if (importTable) im.name('env').name('table').byte(0x01).byte(0x70).byte(0x00).u32(1); // funcref table, min 1
  for (const f of imports) im.name(f.module).name(f.name).byte(0x00).u32(f.type);
  for (const g of globals) im.name('env').name(g).byte(0x03).byte(I32).byte(0x00);
  section(2, im);
  const fs = new ByteWriter().u32(funcs.length);
  for (const f of funcs) fs.u32(f.type);
  section(3, fs);
  const exported = funcs.map((f, i) => [f, i] as const).filter(([f]) => f.exportName);
  const ex = new ByteWriter().u32(exported.length);
  for (const [f, i] of exported) ex.name(f.exportName!).byte(0x00).u32(imports.length + i);
  section(7, ex);
  const code = new ByteWriter().u32(funcs.length);
  for (const f of funcs) {
    const body = new ByteWriter().u32(f.locals.length);
    for (const [n, ty] of f.locals) body.u32(n).byte(ty);
    body.bytes(f.code).byte(OP.end);
    const b = body.finish();
    code.u32(b.length).bytes(b);
  }
  section(10, code);
  return out.finish();
}

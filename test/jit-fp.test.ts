// The translator's inline FP fast paths (src/jit/translate.ts: emitFpFast,
// emitFmaFast) must be bit-exact with the interpreter, fflags included.
// Each case runs a hot loop that, per table entry, loads operands into F
// registers, sets fcsr (flags and frm), executes one FP instruction, and
// stores the result register and fcsr back to the table. The same program
// runs with the translator off and on; the tables must come out identical,
// and the translated run must actually have executed translated code.
// Operands mix random bits with hand-picked hard cases: signed zeros,
// infinities, quiet and signalling NaNs, subnormals, the edges of the ranges
// the fast paths accept, results near overflow and underflow, near-ties and
// cancellations for the fused multiply-adds, and improperly NaN-boxed singles.
// The fused results are also checked against exact rational arithmetic
// (BigInt), an oracle independent of both the interpreter and the fast path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { CpuCore } from '../src/machine/cpu-core.js';

const wasm = new Uint8Array(readFileSync(new URL('../../build/cpu.wasm', import.meta.url)));
const RAM_BASE = 0x8000_0000;
const HANDLER = 0x10_0000; // M-mode trap handler (illegal rounding modes trap)
const TABLE = 0x20_0000;
const ENTRY = 56; // a, b, c, fcsr in; result, fcsr, mstatus (fsMode other than 'dirty') out

// csrr t0, mepc; addi t0, t0, 4; csrw mepc, t0; mret
const SKIP_HANDLER = [0x341022f3, 0x00428293, 0x34129073, 0x30200073];

// ---- encoders ----
const iType = (op: number, f3: number, rd: number, rs1: number, imm: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const sType = (op: number, f3: number, rs1: number, rs2: number, imm: number) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | op) >>> 0;
const bne = (rs1: number, rs2: number, off: number) =>
  ((((off >> 12) & 1) << 31) | (((off >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (1 << 12) |
    (((off >> 1) & 15) << 8) | (((off >> 11) & 1) << 7) | 0x63) >>> 0;
const rType = (f5: number, fmt: number, rs2: number, rs1: number, rm: number, rd: number) =>
  ((f5 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | 0x53) >>> 0;
const r4Type = (op: number, fmt: number, rs3: number, rs2: number, rs1: number, rm: number, rd: number) =>
  ((rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | op) >>> 0;
const A0 = 10, A1 = 11, T0 = 5, T1 = 6, T2 = 7, T3 = 28, T4 = 29, S1 = 9, T5 = 30;

/**
 * 'dirty': FS stays Dirty, but the fscsr right before the instruction makes
 * the translator forget that, so the fast path checks FS at run time;
 * 'known': the fscsr comes first and an FLD precedes the instruction in the
 * block, so the translator knows FS is Dirty and checks nothing;
 * 'initial' / 'off': FS is lowered right before the instruction.
 */
type FsMode = 'dirty' | 'known' | 'initial' | 'off';

interface Vec { a: bigint; b: bigint; c: bigint; fcsr: number }

/**
 * The loop: [set FS Dirty,] fld f1..f3, fscsr, [lower mstatus.FS,] ld s1,
 * insn, [read mstatus, set FS Dirty,] fsd/sd rd, frcsr, store, next (see
 * FsMode). When FS is lowered, the mstatus write also ends the translated
 * block, so the instruction starts one: the fast path must then defer to
 * jitFp, which marks FS Dirty or traps as the interpreter does.
 */
function program(insn: number, rd: number, fsMode: FsMode, xResult: boolean): number[] {
  const lower = fsMode === 'initial' || fsMode === 'off';
  const w: number[] = [];
  const fscsr = [iType(0x03, 3, T0, A0, 24), iType(0x73, 1, 0, T0, 0x003)]; // ld t0; fscsr t0
  if (lower) w.push(iType(0x73, 2, 0, T3, 0x300)); // csrs mstatus, t3 (FS Dirty)
  if (fsMode === 'known') w.push(...fscsr);
  w.push(iType(0x07, 3, 1, A0, 0), iType(0x07, 3, 2, A0, 8), iType(0x07, 3, 3, A0, 16));
  if (fsMode !== 'known') w.push(...fscsr);
  if (lower) w.push(iType(0x73, 3, 0, T2, 0x300)); // csrc mstatus, t2
  // s1 = a's bits too (FMV.D.X source): when translated, only in a local at the instruction
  w.push(iType(0x03, 3, S1, A0, 0), insn);
  if (lower) w.push(iType(0x73, 2, T4, 0, 0x300), iType(0x73, 2, 0, T3, 0x300)); // csrr t4, mstatus; csrs mstatus, t3
  w.push(sType(xResult ? 0x23 : 0x27, 3, A0, rd, 32), iType(0x73, 2, T1, 0, 0x003), sType(0x23, 3, A0, T1, 40), sType(0x23, 3, A0, T4, 48));
  w.push(iType(0x13, 0, A0, A0, ENTRY));
  w.push(bne(A0, A1, -4 * w.length));
  w.push(0x0000100f, 0x0000006f); // fence.i (ends the translated block), j .
  return w;
}

function run(words: number[], vecs: Vec[], jit: boolean, fsMode: FsMode): { out: bigint[]; jitInsns: bigint } {
  const core = new CpuCore(wasm, RAM_SIZE, { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} });
  const dv = new DataView(core.ram.buffer, core.ram.byteOffset, RAM_SIZE);
  words.forEach((w, i) => dv.setUint32(i * 4, w, true));
  SKIP_HANDLER.forEach((w, i) => dv.setUint32(HANDLER + i * 4, w, true));
  vecs.forEach((v, i) => {
    const o = TABLE + i * ENTRY;
    dv.setBigUint64(o, v.a, true);
    dv.setBigUint64(o + 8, v.b, true);
    dv.setBigUint64(o + 16, v.c, true);
    dv.setBigUint64(o + 24, BigInt(v.fcsr), true);
  });
  core.reset(BigInt(RAM_BASE));
  core.writeCsr(0x305, BigInt(RAM_BASE + HANDLER));
  core.writeCsr(0x300, 3n << 13n); // FS Dirty
  core.setX(A0, BigInt(RAM_BASE + TABLE));
  core.setX(A1, BigInt(RAM_BASE + TABLE + vecs.length * ENTRY));
  core.setX(T2, (fsMode === 'off' ? 3n : 2n) << 13n);
  core.setX(T3, 3n << 13n);
  core.setJitEnabled(jit);
  const end = RAM_BASE + TABLE + vecs.length * ENTRY;
  // Small slices: the host translates between them, so most of the table runs translated.
  for (let i = 0; i < 100_000 && core.getX(A0) !== BigInt(end); i++) core.run(200);
  assert.equal(core.getX(A0), BigInt(end), 'the loop finished');
  const out: bigint[] = [];
  for (let i = 0; i < vecs.length; i++) {
    for (const o of [32, 40, 48]) out.push(dv.getBigUint64(TABLE + i * ENTRY + o, true));
  }
  return { out, jitInsns: core.exports.getJitInstructions() };
}

/** JITFP_SCALE=N multiplies the number of operand sets, for a deeper run by hand. */
const SCALE = Math.max(1, Number(process.env.JITFP_SCALE ?? 1) || 1);
const RAM_SIZE = (4 + Math.ceil(SCALE / 4)) * 1024 * 1024;

const hex = (v: bigint) => '0x' + v.toString(16).padStart(16, '0');

function compare(name: string, insn: number, rd: number, vecs: Vec[], fsMode: FsMode = 'dirty', xResult = false): void {
  const words = program(insn, rd, fsMode, xResult);
  const ref = run(words, vecs, false, fsMode);
  const got = run(words, vecs, true, fsMode);
  assert.ok(got.jitInsns > BigInt(vecs.length * 4), `${name}: translated code ran (${got.jitInsns} instructions)`);
  for (let i = 0; i < vecs.length; i++) {
    const [r0, f0, m0, r1, f1, m1] = [...ref.out.slice(3 * i, 3 * i + 3), ...got.out.slice(3 * i, 3 * i + 3)];
    if (r0 !== r1 || f0 !== f1 || m0 !== m1) {
      const v = vecs[i];
      assert.fail(`${name} (insn 0x${insn.toString(16)}), entry ${i}: a=${hex(v.a)} b=${hex(v.b)} c=${hex(v.c)} fcsr=0x${v.fcsr.toString(16)}\n` +
        `  interpreter: ${hex(r0)} fcsr 0x${f0.toString(16)} mstatus 0x${m0.toString(16)}\n` +
        `  translated:  ${hex(r1)} fcsr 0x${f1.toString(16)} mstatus 0x${m1.toString(16)}`);
    }
  }
}

// ---- operands ----

const f64b = (d: number) => { const v = new DataView(new ArrayBuffer(8)); v.setFloat64(0, d); return v.getBigUint64(0); };
const b2f64 = (b: bigint) => { const v = new DataView(new ArrayBuffer(8)); v.setBigUint64(0, BigInt.asUintN(64, b)); return v.getFloat64(0); };
const f32b = (f: number) => { const v = new DataView(new ArrayBuffer(4)); v.setFloat32(0, f); return BigInt(v.getUint32(0)); };
const b2f32 = (b: bigint) => { const v = new DataView(new ArrayBuffer(4)); v.setUint32(0, Number(b & 0xffffffffn)); return v.getFloat32(0); };
const BOX = 0xffffffff_00000000n;

/** Deterministic generator (xorshift64*), so failures reproduce. */
class Rng {
  constructor(private s: bigint) {}
  next(): bigint {
    let x = this.s;
    x ^= x >> 12n; x ^= (x << 25n) & 0xffffffffffffffffn; x ^= x >> 27n;
    this.s = x;
    return (x * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn;
  }
  int(n: number): number { return Number(this.next() % BigInt(n)); }
  pick<T>(xs: T[]): T { return xs[this.int(xs.length)]; }
}

const SPECIAL_D = [
  0n, 1n << 63n, f64b(Infinity), f64b(-Infinity), 0x7ff8000000000000n, 0x7ff0000000000001n, 0xfff4000000000000n,
  1n, 0x000fffffffffffffn, 0x8000000000000001n, 0x0010000000000000n, 0x0020000000000000n, 0x001fffffffffffffn,
  0x7fefffffffffffffn, 0xffefffffffffffffn, f64b(1), f64b(-1), f64b(2 ** -480), f64b(2 ** 481), f64b(2 ** 481) - 1n,
  f64b(2 ** -480) - 1n, f64b(2 ** 511), f64b(2 ** -511), f64b(2 ** 1000), f64b(2 ** -1000), f64b(1.5), f64b(3),
  f64b(0.1), f64b(1 + 2 ** -52), f64b(1 - 2 ** -53), f64b(2 ** -1021), f64b(2 ** -1022),
];
const SPECIAL_S = [
  0n, 0x80000000n, 0x7f800000n, 0xff800000n, 0x7fc00000n, 0x7f800001n, 0xffa00000n, 1n, 0x007fffffn, 0x80000001n,
  0x00800000n, 0x01000000n, 0x00ffffffn, 0x7f7fffffn, 0xff7fffffn, f32b(1), f32b(-1), f32b(1.5), f32b(0.1),
  f32b(2 ** 100), f32b(2 ** -100), f32b(2 ** -125), f32b(2 ** -126), f32b(1 + 2 ** -23),
];

/** A binary64 operand: special, random bits, random magnitude near 1, or an extreme exponent. */
function randD(r: Rng): bigint {
  switch (r.int(6)) {
    case 0: return r.pick(SPECIAL_D);
    case 1: return r.next();
    case 2: case 3: return (r.next() & 0x800fffffffffffffn) | (BigInt(1023 - 8 + r.int(16)) << 52n);
    case 4: return (r.next() & 0x800fffffffffffffn) | (BigInt(r.int(2048)) << 52n);
    default: return (r.next() & 0x800fffffffffffffn) | (BigInt(r.pick([1, 2, 3, 542, 543, 544, 1502, 1503, 1504, 2045, 2046])) << 52n);
  }
}

/** A binary32 operand, NaN-boxed except now and then. */
function randS(r: Rng): bigint {
  let v: bigint;
  switch (r.int(5)) {
    case 0: v = r.pick(SPECIAL_S); break;
    case 1: v = r.next() & 0xffffffffn; break;
    case 2: case 3: v = (r.next() & 0x807fffffn) | (BigInt(127 - 8 + r.int(16)) << 23n); break;
    default: v = (r.next() & 0x807fffffn) | (BigInt(r.pick([1, 2, 3, 125, 126, 127, 128, 252, 253, 254])) << 23n);
  }
  const k = r.int(20);
  if (k === 0) return v; // upper half zero: not boxed
  if (k === 1) return (r.next() & ~0xffffffffn) | v;
  return BOX | v;
}

/** fcsr: mostly NX already set (the fast paths' precondition) and frm RNE; sometimes anything. */
function randFcsr(r: Rng): number {
  const flags = r.int(4) === 0 ? r.int(32) : (r.int(32) | 1);
  const frm = r.int(4) === 0 ? r.int(8) : 0;
  return flags | (frm << 5);
}

/**
 * Operands for one instruction. For the binary ones, b is sometimes derived
 * from a (cancellation, a near-tie with a's last bit, a quotient near an edge);
 * for the fused ones c is sometimes about -(a*b), so the sum cancels and the
 * exact low part of the product decides the result.
 */
function makeVecs(r: Rng, n: number, dbl: boolean, fused: boolean): Vec[] {
  n *= SCALE;
  const vs: Vec[] = [];
  const rand = () => (dbl ? randD(r) : randS(r));
  for (let i = 0; i < n; i++) {
    let a = rand(), b = rand(), c = rand();
    const k = r.int(8);
    if (dbl) {
      const x = b2f64(a), y = b2f64(b);
      if (k === 0) b = a ^ (1n << 63n) ^ BigInt(r.int(4)); // a - a(1 +- few ulps)
      else if (k === 1) b = f64b(x * 2 ** -53 * (1 + (r.int(3) - 1) * 2 ** -52)); // near half an ulp of a
      else if (k === 2 && fused) c = f64b(-(x * y)) + BigInt(r.int(5) - 2); // cancellation
      else if (k === 3 && fused) c = f64b(-(x * y) * (1 + 2 ** -30)); // partial cancellation
      else if ((k === 4 || k === 5) && fused) {
        // Odd 27-bit significands: the exact product is often a 54-bit tie, and a
        // tiny c decides the rounding (a double rounding through sl + pl would miss it).
        const sig27 = () => (r.next() & 0x000ffffffc000000n) | (1n << 26n);
        a = (r.next() & (1n << 63n)) | (BigInt(1023 - 4 + r.int(8)) << 52n) | sig27();
        b = (r.next() & (1n << 63n)) | (BigInt(1023 - 4 + r.int(8)) << 52n) | sig27();
        const p = b2f64(a) * b2f64(b);
        c = f64b(p * 2 ** -(54 + r.int(20)) * (1 + Number(r.next() >> 12n) * 2 ** -52) * (r.int(2) ? 1 : -1));
      }
    } else {
      const box = (v: bigint) => BOX | (v & 0xffffffffn);
      const x = b2f32(a), y = b2f32(b);
      if (k === 0) b = box((a ^ 0x80000000n) ^ BigInt(r.int(4)));
      else if (k === 1) b = box(f32b(x * 2 ** -24 * (1 + (r.int(3) - 1) * 2 ** -23)));
      else if (k === 2 && fused) c = box(f32b(-(x * y)) + BigInt(r.int(5) - 2));
      else if ((k === 3 || k === 4) && fused) {
        // Odd 13-bit significands: the exact product is often a binary32 tie that a tiny c decides.
        const sig13 = () => (r.next() & 0x007ff800n) | (1n << 11n);
        a = BOX | (r.next() & 0x80000000n) | (BigInt(127 - 4 + r.int(8)) << 23n) | sig13();
        b = BOX | (r.next() & 0x80000000n) | (BigInt(127 - 4 + r.int(8)) << 23n) | sig13();
        const p = b2f32(a) * b2f32(b);
        c = BOX | f32b(p * 2 ** -(26 + r.int(30)) * (r.int(2) ? 1 : -1));
      }
    }
    vs.push({ a, b, c, fcsr: randFcsr(r) });
  }
  return vs;
}

// ---- the cases ----

const OPS: { name: string; enc: (fmt: number, rm: number, rd: number) => number; fused: boolean }[] = [
  { name: 'fadd', enc: (f, rm, rd) => rType(0, f, 2, 1, rm, rd), fused: false },
  { name: 'fsub', enc: (f, rm, rd) => rType(1, f, 2, 1, rm, rd), fused: false },
  { name: 'fmul', enc: (f, rm, rd) => rType(2, f, 2, 1, rm, rd), fused: false },
  { name: 'fdiv', enc: (f, rm, rd) => rType(3, f, 2, 1, rm, rd), fused: false },
  { name: 'fsqrt', enc: (f, rm, rd) => rType(0x0b, f, 0, 1, rm, rd), fused: false },
  { name: 'fmadd', enc: (f, rm, rd) => r4Type(0x43, f, 3, 2, 1, rm, rd), fused: true },
  { name: 'fmsub', enc: (f, rm, rd) => r4Type(0x47, f, 3, 2, 1, rm, rd), fused: true },
  { name: 'fnmsub', enc: (f, rm, rd) => r4Type(0x4b, f, 3, 2, 1, rm, rd), fused: true },
  { name: 'fnmadd', enc: (f, rm, rd) => r4Type(0x4f, f, 3, 2, 1, rm, rd), fused: true },
];

test('FP fast paths: arithmetic and fused multiply-add, every rounding mode, S and D, translated = interpreted', () => {
  const r = new Rng(0x6a69_7466_7021n);
  for (const op of OPS) for (const fmt of [0, 1]) for (const rm of [0, 7, 1, 2, 3, 4]) {
    // rd = f4, or rd equal to a source (the result must not clobber an operand the slow path rereads)
    const rd = r.pick([4, 4, 1, 2, 3]);
    const fs = r.int(2) ? 'dirty' : 'known';
    const name = `${op.name}.${fmt ? 'd' : 's'} rm=${rm} rd=f${rd} FS ${fs}`;
    compare(name, op.enc(fmt, rm, rd), rd, makeVecs(r, 400, fmt === 1, op.fused), fs);
  }
});

test('FP fast paths: FSGNJ/FSGNJN/FSGNJX, S (NaN-boxing) and D', () => {
  const r = new Rng(0x7367_6e6an);
  for (const fmt of [0, 1]) for (const rm of [0, 1, 2]) for (const [rs1, rs2] of [[1, 2], [1, 1]]) {
    const rd = r.pick([4, 1, 2]);
    compare(`fsgnj rm=${rm} fmt=${fmt} f${rd}=f${rs1},f${rs2}`, rType(4, fmt, rs2, rs1, rm, rd), rd, makeVecs(r, 300, fmt === 1, false));
  }
});

test('FP fast paths: FMV.X.D/W, FMV.D/W.X, FEQ/FLT/FLE (x registers), S and D', () => {
  const r = new Rng(0x786d76n);
  for (const fs of ['dirty', 'initial', 'off'] as const) for (const fmt of [0, 1]) {
    const s = fmt === 0 ? 's' : 'd';
    // x[rd]: T5, or S1 (a source loaded in this block), or x0
    for (const xd of [T5, S1, 0]) {
      compare(`fmv.x.${s} x${xd} FS ${fs}`, rType(0x1c, fmt, 0, 1, 0, xd), xd, makeVecs(r, 300, fmt === 1, false), fs, true);
      for (const [rm, n] of [[0, 'fle'], [1, 'flt'], [2, 'feq']] as const) {
        const v = makeVecs(r, 300, fmt === 1, false);
        for (let i = 0; i < v.length; i += 3) v[i].b = v[i].a; // equal operands now and then
        compare(`${n}.${s} x${xd} FS ${fs}`, rType(0x14, fmt, 2, 1, rm, xd), xd, v, fs, true);
      }
    }
    compare(`fclass.${s} FS ${fs}`, rType(0x1c, fmt, 0, 1, 1, T5), T5, makeVecs(r, 300, fmt === 1, false), fs, true);
    compare(`fmv.${s}.x FS ${fs}`, rType(0x1e, fmt, 0, S1, 0, 4), 4, makeVecs(r, 300, fmt === 1, false), fs);
    compare(`fmv.${s}.x f1 FS ${fs}`, rType(0x1e, fmt, 0, S1, 0, 1), 1, makeVecs(r, 300, fmt === 1, false), fs);
  }
});

test('FP fast paths: FCVT.S/D.W/WU/L/LU (x source), every rounding mode', () => {
  const r = new Rng(0x637674n);
  const edges = [0n, 1n, -1n, 2n ** 24n, 2n ** 24n + 1n, -(2n ** 24n), -(2n ** 24n) - 1n, 2n ** 53n, 2n ** 53n + 1n,
    -(2n ** 53n), -(2n ** 53n) - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, -(2n ** 31n), 2n ** 63n - 1n, -(2n ** 63n)];
  const intOperand = (): bigint => {
    switch (r.int(5)) {
      case 0: return BigInt.asUintN(64, r.pick(edges) + BigInt(r.int(5) - 2));
      case 1: return r.next();
      case 2: return BigInt.asUintN(64, BigInt.asIntN(64, r.next()) >> BigInt(r.int(64))); // any magnitude, either sign
      case 3: return (r.next() & 0xffffffffn) | (r.int(2) ? 0xffffffff00000000n : 0n) ^ (r.int(4) === 0 ? 1n << 40n : 0n);
      default: return BigInt.asUintN(64, BigInt(r.int(1 << 30) - (1 << 29)));
    }
  };
  for (const fmt of [0, 1]) for (const src of [0, 1, 2, 3]) for (const rm of [0, 1, 4, 5, 7]) {
    const vecs = makeVecs(r, 300, fmt === 1, false).map((v) => ({ ...v, a: intOperand() }));
    const name = `fcvt.${fmt ? 'd' : 's'}.${['w', 'wu', 'l', 'lu'][src]} rm=${rm}`;
    compare(name, rType(0x1a, fmt, src, S1, rm, 4), 4, vecs);
    if (rm === 7) compare(`${name} FS initial`, rType(0x1a, fmt, src, S1, rm, 1), 1, vecs, 'initial');
  }
});

test('FP fast paths: FCVT.W/WU/L/LU.S/D (x result), every rounding mode', () => {
  const r = new Rng(0x746f696e74n);
  const edges = [0, -0, 0.5, 1.5, 2.5, -0.5, -0.25, -1, 3.7, -3.7, 2 ** 31 - 1, 2 ** 31 - 0.5, 2 ** 31, -(2 ** 31), -(2 ** 31) - 0.5,
    -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32 - 0.5, 2 ** 32, 2 ** 63, 2 ** 63 - 1024, -(2 ** 63), -(2 ** 63) - 2048, 2 ** 64,
    2 ** 64 - 2048, 1e10, -1e10, 2 ** 52 + 0.5, Infinity, -Infinity, NaN];
  for (const fmt of [0, 1]) for (const dst of [0, 1, 2, 3]) for (const rm of [0, 1, 2, 3, 4, 7]) {
    const vecs = makeVecs(r, 300, fmt === 1, false).map((v) => {
      const k = r.int(3);
      if (k === 2) return v;
      const d = k === 0 ? r.pick(edges) : (r.int(1 << 20) - (1 << 19)) * 2 ** -r.int(4);
      return { ...v, a: fmt === 1 ? f64b(d) : BOX | f32b(d) };
    });
    const name = `fcvt.${['w', 'wu', 'l', 'lu'][dst]}.${fmt ? 'd' : 's'} rm=${rm}`;
    compare(name, rType(0x18, fmt, dst, 1, rm, T5), T5, vecs, 'dirty', true);
    if (rm === 1) compare(`${name} x${S1} FS initial`, rType(0x18, fmt, dst, 1, rm, S1), S1, vecs, 'initial', true);
  }
});

test('FP fast paths: FCVT.D.S and FCVT.S.D, every rounding mode', () => {
  const r = new Rng(0x636666n);
  for (const rm of [0, 1, 3, 4, 5, 7]) {
    // FCVT.S.D: binary64 operands, often near binary32 ties, the range edges and subnormals
    const near = makeVecs(r, 400, true, false).map((v) => {
      const k = r.int(4);
      if (k === 0) return v;
      if (k === 1) return { ...v, a: (r.next() & 0x800fffffffffffffn) | (BigInt(1023 - 150 + r.int(28)) << 52n) }; // binary32 subnormal range
      if (k === 2 && r.int(2)) return { ...v, a: f64b((2 ** -126 - 2 ** -150 * (1 + (r.int(5) - 2) * 2 ** -20)) * (r.int(2) ? 1 : -1)) }; // tiny only before rounding
      const x = b2f32(r.next()) * (1 + (r.int(3) - 1) * 2 ** -25);
      return { ...v, a: f64b(Number.isFinite(x) ? x : 1) + BigInt(r.int(3) - 1) };
    });
    compare(`fcvt.s.d rm=${rm}`, rType(8, 0, 1, 1, rm, 4), 4, near);
    compare(`fcvt.d.s rm=${rm}`, rType(8, 1, 0, 1, rm, 4), 4, makeVecs(r, 400, false, false));
  }
});

test('FP fast paths: FMIN/FMAX, S and D', () => {
  const r = new Rng(0x6d696en);
  for (const fmt of [0, 1]) for (const rm of [0, 1, 2]) {
    const v = makeVecs(r, 400, fmt === 1, false);
    for (let i = 0; i < v.length; i += 4) v[i].b = v[i].a ^ (fmt === 1 ? 1n << 63n : 1n << 31n); // +-x, incl. +-0
    compare(`f${rm ? 'max' : 'min'}.${fmt ? 'd' : 's'} rm=${rm}`, rType(5, fmt, 2, 1, rm, 4), 4, v);
  }
});

test('FP fast paths defer to jitFp while mstatus.FS is not Dirty (Initial: marked Dirty; Off: illegal instruction)', () => {
  const r = new Rng(0x6673n);
  for (const fs of ['initial', 'off'] as const) {
    compare(`fadd.d, FS ${fs}`, rType(0, 1, 2, 1, 0, 4), 4, makeVecs(r, 300, true, false), fs);
    compare(`fmadd.d, FS ${fs}`, r4Type(0x43, 1, 3, 2, 1, 7, 4), 4, makeVecs(r, 300, true, true), fs);
    compare(`fnmsub.s, FS ${fs}`, r4Type(0x4b, 0, 3, 2, 1, 0, 4), 4, makeVecs(r, 300, false, true), fs);
    compare(`fsqrt.s, FS ${fs}`, rType(0x0b, 0, 0, 1, 7, 4), 4, makeVecs(r, 300, false, false), fs);
    compare(`fsgnj.s, FS ${fs}`, rType(4, 0, 2, 1, 0, 4), 4, makeVecs(r, 300, false, false), fs);
  }
});

test('FP fast paths: property, random operands of any kind for every fast-path opcode', () => {
  const allOps = [...OPS.map((o) => ({ ...o, sgnj: false })), { name: 'fsgnjx', enc: (f: number, _rm: number, rd: number) => rType(4, f, 2, 1, 2, rd), fused: false, sgnj: true }];
  fc.assert(
    fc.property(
      fc.constantFrom(...allOps), fc.constantFrom(0, 1), fc.constantFrom(0, 7), fc.bigInt({ min: 1n, max: (1n << 62n) }),
      (op, fmt, rm, seed) => {
        compare(`${op.name} fmt=${fmt} rm=${rm} seed=${seed}`, op.enc(fmt, rm, 4), 4, makeVecs(new Rng(seed), 200, fmt === 1, op.fused), 'known');
      },
    ),
    { numRuns: 40, seed: 0x6670 },
  );
});

// ---- an oracle independent of the interpreter: exact rational arithmetic ----

/** x = m * 2^e exactly (m signed). */
function decompose(x: bigint): [bigint, number] {
  const e = Number((x >> 52n) & 0x7ffn);
  let m = x & 0xfffffffffffffn;
  let ex: number;
  if (e === 0) ex = -1074;
  else { m |= 1n << 52n; ex = e - 1075; }
  return [x >> 63n ? -m : m, ex];
}

/** RNE(a*b + c) to `prec` bits, for a result in the normal range (the caller checks). */
function exactFma(a: bigint, b: bigint, c: bigint, prec: number): number {
  const [ma, ea] = decompose(a), [mb, eb] = decompose(b), [mc, ec] = decompose(c);
  const ep = ea + eb, em = Math.min(ep, ec);
  let m = ((ma * mb) << BigInt(ep - em)) + (mc << BigInt(ec - em));
  if (m === 0n) return 0;
  const neg = m < 0n;
  if (neg) m = -m;
  const n = m.toString(2).length;
  let q = m, sh = 0;
  if (n > prec) {
    sh = n - prec;
    q = m >> BigInt(sh);
    const rem = m - (q << BigInt(sh)), half = 1n << BigInt(sh - 1);
    if (rem > half || (rem === half && (q & 1n) !== 0n)) q++;
  }
  let v = Number(q), k = em + sh;
  while (k > 500) { v *= 2 ** 500; k -= 500; }
  while (k < -500) { v *= 2 ** -500; k += 500; }
  v *= 2 ** k;
  return neg ? -v : v;
}

test('FP fast paths: translated FMADD.D/FMADD.S results equal exactly rounded a*b + c', () => {
  for (const dbl of [true, false]) {
    const r = new Rng(dbl ? 0x6578616374n : 0x65786163n);
    // fcsr = NX, frm = RNE throughout, so (almost) every entry takes the fast path once translated
    const vecs = makeVecs(r, 3000, dbl, true).map((v) => ({ ...v, fcsr: 1 }));
    const words = program(r4Type(0x43, dbl ? 1 : 0, 3, 2, 1, 7, 4), 4, 'dirty', false);
    const got = run(words, vecs, true, 'dirty');
    let checked = 0;
    vecs.forEach((v, i) => {
      const res = got.out[3 * i];
      const wide = (x: bigint) => (dbl ? x : f64b(b2f32(x))); // binary32 operands widened exactly
      if (!dbl && ((v.a & v.b & v.c & BOX) !== BOX || (res & BOX) !== BOX)) return;
      const x = dbl ? b2f64(res) : b2f32(res);
      const lo = dbl ? 2 ** -1021 : 2 ** -125, hi = dbl ? Number.MAX_VALUE : 3.4028234663852886e38;
      if (!(Math.abs(x) >= lo && Math.abs(x) <= hi)) return; // not a fast-path result
      const [a, b, c] = [wide(v.a), wide(v.b), wide(v.c)];
      if ([a, b, c].some((y) => ((y >> 52n) & 0x7ffn) === 0x7ffn)) return;
      const want = exactFma(a, b, c, dbl ? 53 : 24);
      assert.ok(Object.is(x, want), `fmadd.${dbl ? 'd' : 's'} entry ${i}: a=${hex(v.a)} b=${hex(v.b)} c=${hex(v.c)}: ${x} != ${want}`);
      checked++;
    });
    assert.ok(checked > 1000, `checked ${checked} results`);
  }
});

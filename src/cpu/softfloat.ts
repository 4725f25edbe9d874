// IEEE-754 binary32 / binary64 arithmetic done with integer operations,
// bit-exact with the RISC-V F/D extensions:
//  - all five rounding modes (RNE, RTZ, RDN, RUP, RMM),
//  - exact accrued flags (NV, DZ, OF, UF, NX), tininess detected AFTER rounding,
//  - any NaN result is the canonical NaN, signalling NaN inputs raise NV.
//
// Encodings are passed around as raw bits in a u64 (binary32 in the low 32
// bits, no NaN-boxing here: that is the instruction layer's business), with
// a `dbl` flag selecting the format. Every finite nonzero operand is unpacked
// into one common shape, "sign, exponent of the leading 1, 53-bit significand
// with the leading 1 at bit 52"; a binary32 significand simply has 29 more
// trailing zeros. All operations compute an exact (or exact-with-sticky)
// intermediate and round exactly once, in roundPack, to the target precision,
// so binary32 and binary64 share all the code. In RNE, add/sub/mul/div/sqrt
// first try a native wasm fast path (see below) that is exact by construction
// and falls through to the integer path whenever it cannot be proven exact.
//
// Flags raised by an operation are OR-ed into `sfFlags`; the caller clears it
// before and folds it into fflags after.

import {
  FLAG_NX, FLAG_UF, FLAG_OF, FLAG_DZ, FLAG_NV,
  RM_RNE, RM_RTZ, RM_RDN, RM_RUP, RM_RMM,
} from "./state";

/** Exception flags accumulated by the operations below (fflags bit layout). */
export let sfFlags: u32 = 0;

export const CNAN_S: u64 = 0x7fc00000;
export const CNAN_D: u64 = 0x7ff8000000000000;

// ---------------------------------------------------------------------------
// Format helpers

@inline function signPos(dbl: bool): u64 { return dbl ? 63 : 31; }
@inline function fracBits(dbl: bool): u64 { return dbl ? 52 : 23; }
@inline function expMask(dbl: bool): u64 { return dbl ? 0x7ff : 0xff; }
@inline function bias(dbl: bool): i32 { return dbl ? 1023 : 127; }
@inline function signBit(dbl: bool): u64 { return <u64>1 << signPos(dbl); }
@inline function signOf(x: u64, dbl: bool): u64 { return (x >> signPos(dbl)) & 1; }
@inline function bexpOf(x: u64, dbl: bool): u64 { return (x >> fracBits(dbl)) & expMask(dbl); }
@inline function fracOf(x: u64, dbl: bool): u64 { return x & ((<u64>1 << fracBits(dbl)) - 1); }
@inline function absOf(x: u64, dbl: bool): u64 { return x & (signBit(dbl) - 1); }
@inline function infOf(dbl: bool): u64 { return expMask(dbl) << fracBits(dbl); }
@inline function cnan(dbl: bool): u64 { return dbl ? CNAN_D : CNAN_S; }

@inline export function isNaNF(x: u64, dbl: bool): bool { return absOf(x, dbl) > infOf(dbl); }
/** A NaN whose quiet bit (the top fraction bit) is clear. */
@inline export function isSNaNF(x: u64, dbl: bool): bool {
  return isNaNF(x, dbl) && ((x >> (fracBits(dbl) - 1)) & 1) == 0;
}
@inline function isInfF(x: u64, dbl: bool): bool { return absOf(x, dbl) == infOf(dbl); }
@inline function isZeroF(x: u64, dbl: bool): bool { return absOf(x, dbl) == 0; }

/** Canonical NaN result; NV if any of the inputs is a signalling NaN. */
function nanResult3(a: u64, b: u64, c: u64, dbl: bool): u64 {
  if (isSNaNF(a, dbl) || isSNaNF(b, dbl) || isSNaNF(c, dbl)) sfFlags |= FLAG_NV;
  return cnan(dbl);
}

/** Exactly-zero result of an effective subtraction (x - x): +0, or -0 in RDN. */
@inline function exactZero(dbl: bool, rm: u32): u64 {
  return rm == RM_RDN ? signBit(dbl) : 0;
}

// Unpacked operand (module globals: AS has no cheap multi-value returns).
let uExp: i32 = 0;
let uSig: u64 = 0;

/**
 * Unpack a finite nonzero encoding: uSig = significand with the leading 1 at
 * bit 52 (subnormals are normalised), uExp = unbiased exponent of that 1,
 * i.e. |x| = uSig * 2^(uExp - 52).
 */
function unpack(x: u64, dbl: bool): void {
  let e = <i32>bexpOf(x, dbl);
  let m = fracOf(x, dbl) << (52 - fracBits(dbl));
  if (e == 0) {
    let lz = <i32>clz(m) - 11;
    uSig = m << lz;
    uExp = 1 - bias(dbl) - lz;
  } else {
    uSig = m | (<u64>1 << 52);
    uExp = e - bias(dbl);
  }
}

/** x >> n, OR-ing every bit shifted out into bit 0 ("jamming" / sticky). */
@inline function shrJam(x: u64, n: i32): u64 {
  if (n <= 0) return x;
  if (n >= 64) return <u64>(x != 0);
  return (x >> n) | <u64>((x & ((<u64>1 << n) - 1)) != 0);
}

/**
 * Rounding increment (0 or 1) for a value whose kept part is `kept` and whose
 * discarded part is `r`, compared against `half` (the weight of half an ulp).
 */
@inline function roundInc(neg: bool, kept: u64, r: u64, half: u64, rm: u32): u64 {
  switch (rm) {
    case RM_RNE: return <u64>(r > half || (r == half && (kept & 1) != 0));
    case RM_RTZ: return 0;
    case RM_RDN: return <u64>(neg && r != 0);
    case RM_RUP: return <u64>(!neg && r != 0);
    default: return <u64>(r >= half); // RM_RMM
  }
}

/** Overflow result: +-inf or +-max finite depending on direction. */
function overflow(neg: bool, dbl: bool, rm: u32): u64 {
  sfFlags |= FLAG_OF | FLAG_NX;
  let toInf = rm == RM_RNE || rm == RM_RMM || (rm == RM_RDN && neg) || (rm == RM_RUP && !neg);
  let mag = toInf ? infOf(dbl) : infOf(dbl) - 1;
  return neg ? mag | signBit(dbl) : mag;
}

/**
 * Round and pack a nonzero value |v| = sig * 2^(exp - 62), where sig has its
 * leading 1 at bit 62 and any nonzero bits below the precision of interest
 * have been jammed into the low bits. Rounds once to the target precision,
 * handles subnormal results, overflow, and raises NX/UF/OF.
 */
function roundPack(neg: bool, exp: i32, sig: u64, dbl: bool, rm: u32): u64 {
  const p: i32 = dbl ? 53 : 24;       // precision incl. hidden bit
  const emin: i32 = dbl ? -1022 : -126;
  const emax: i32 = dbl ? 1023 : 127;
  const s: i32 = 63 - p;              // bit index of the result's ulp in sig
  const mask: u64 = (<u64>1 << s) - 1;
  const half: u64 = <u64>1 << (s - 1);
  if (exp > emax) return overflow(neg, dbl, rm);
  let tiny = false;
  if (exp < emin) {
    // Tininess after rounding: tiny unless rounding to p bits with an
    // unbounded exponent would carry the value up to 2^emin. That can only
    // happen from the binade just below.
    if (exp == emin - 1) {
      let m = (sig >> s) + roundInc(neg, sig >> s, sig & mask, half, rm);
      tiny = m < (<u64>1 << p);
    } else {
      tiny = true;
    }
    sig = shrJam(sig, emin - exp);
    exp = emin;
  }
  let r = sig & mask;
  let m = (sig >> s) + roundInc(neg, sig >> s, r, half, rm);
  if (r != 0) {
    sfFlags |= FLAG_NX;
    if (tiny) sfFlags |= FLAG_UF;
  }
  // m carries the hidden bit at bit p-1, so adding it to (biased exp - 1)
  // bumps the exponent field; a subnormal (no hidden bit) keeps field 0, and
  // a rounding carry into bit p correctly yields the next binade.
  let bits = (<u64>(exp + bias(dbl) - 1) << <u64>(p - 1)) + m;
  if ((bits >> <u64>(p - 1)) >= expMask(dbl)) return overflow(neg, dbl, rm);
  return neg ? bits | signBit(dbl) : bits;
}

// ---------------------------------------------------------------------------
// Native fast paths (RNE only)
//
// wasm f64/f32 arithmetic is IEEE-754 round-to-nearest-even, so in RNE the
// native result is the right one whenever the operands are ordinary normal
// numbers and the result cannot overflow or underflow; what remains is the
// NX flag, which is computed exactly with error-free transformations:
//  - sum: Knuth's TwoSum error term (exact for finite values, no overflow);
//  - product: Dekker's TwoProduct with Veltkamp splitting, exact when the
//    operands' exponents are within +-480 (no overflow in the split, and the
//    error term's lowest bit, ulp(a)*ulp(b), is >= 2^-1074);
//  - quotient / square root: exact iff q*b == a (r*r == a) exactly.
// binary32 is computed in binary64 and narrowed: with 53 >= 2*24+2 bits that
// double rounding equals a single rounding for +, -, *, / and sqrt, and the
// binary32 checks (products of 24-bit values) are exact in binary64.
// Anything else (NaN/inf/zero/subnormal operands, results near the range
// limits, binary32 results below 2^-125 where tininess matters) takes the
// integer path.

// error term of the last twoProd
let tpErr: f64 = 0;

/** tpErr = a*b - fl(a*b) exactly; returns fl(a*b). Preconditions above. */
@inline function twoProd(a: f64, b: f64): f64 {
  const SPLIT: f64 = 134217729.0; // 2^27 + 1
  let p = a * b;
  let ca = SPLIT * a, ah = ca - (ca - a), al = a - ah;
  let cb = SPLIT * b, bh = cb - (cb - b), bl = b - bh;
  tpErr = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
  return p;
}

/** Biased exponent field of a binary64 within [lo, hi] (unbiased +-1023). */
@inline function expIn(x: u64, lo: u64, hi: u64): bool {
  let e = (x >> 52) & 0x7ff;
  return e >= lo && e <= hi;
}
/** binary32 operand is a normal number (not zero/subnormal/inf/NaN). */
@inline function normalS(x: u64): bool {
  let e = (x >> 23) & 0xff;
  return e != 0 && e != 0xff;
}
/** binary32 result safe to return natively: |r| in [2^-125, max finite]. */
@inline function safeS(r: f32): bool {
  let e = (reinterpret<u32>(r) >> 23) & 0xff;
  return e > 1 && e != 0xff;
}
@inline function s2d(x: u64): f64 { return <f64>reinterpret<f32>(<u32>x); }

// ---------------------------------------------------------------------------
// Arithmetic

/** a + b (callers implement subtraction by flipping b's sign first). */
export function fAdd(a: u64, b: u64, dbl: bool, rm: u32): u64 {
  if (rm == RM_RNE) {
    if (dbl) {
      // |a|, |b| < 2^1022: no overflow anywhere; tiny sums are exact.
      if (expIn(a, 1, 0x7fc) && expIn(b, 1, 0x7fc)) {
        let x = reinterpret<f64>(a), y = reinterpret<f64>(b);
        let r = x + y;
        let yv = r - x;
        if ((x - (r - yv)) + (y - yv) != 0) sfFlags |= FLAG_NX;
        return reinterpret<u64>(r);
      }
    } else if (normalS(a) && normalS(b)) {
      let x = s2d(a), y = s2d(b);
      let r = x + y;
      let r32 = <f32>r;
      if (safeS(r32)) {
        let yv = r - x;
        if ((x - (r - yv)) + (y - yv) != 0 || <f64>r32 != r) sfFlags |= FLAG_NX;
        return <u64>reinterpret<u32>(r32);
      }
    }
  }
  if (isNaNF(a, dbl) || isNaNF(b, dbl)) return nanResult3(a, b, 0, dbl);
  let sa = signOf(a, dbl), sb = signOf(b, dbl);
  if (isInfF(a, dbl)) {
    if (isInfF(b, dbl) && sa != sb) { sfFlags |= FLAG_NV; return cnan(dbl); }
    return a;
  }
  if (isInfF(b, dbl)) return b;
  if (isZeroF(a, dbl)) {
    if (isZeroF(b, dbl)) return sa == sb ? a : exactZero(dbl, rm);
    return b; // exact: b is representable
  }
  if (isZeroF(b, dbl)) return a;
  unpack(a, dbl);
  let ea = uExp, ma = uSig << 10; // leading 1 at bit 62, 10 guard bits
  unpack(b, dbl);
  let eb = uExp, mb = uSig << 10;
  // Order so that |a| >= |b|; the result takes a's sign.
  if (ea < eb || (ea == eb && ma < mb)) {
    let t = ea; ea = eb; eb = t;
    let tm = ma; ma = mb; mb = tm;
    let ts = sa; sa = sb; sb = ts;
  }
  // Jamming is safe: when the shift is >= 2 the subtraction cancels at most
  // one bit, leaving >= 8 guard bits above the sticky bit; shifts <= 1 are exact.
  mb = shrJam(mb, ea - eb);
  let e = ea;
  let m: u64;
  if (sa == sb) {
    m = ma + mb;
    if (m >> 63) { m = (m >> 1) | (m & 1); e++; }
  } else {
    m = ma - mb;
    if (m == 0) return exactZero(dbl, rm);
    let lz = <i32>clz(m) - 1;
    m <<= lz;
    e -= lz;
  }
  return roundPack(sa != 0, e, m, dbl, rm);
}

// 128-bit product of two u64 (module globals).
let mulHi: u64 = 0;
let mulLo: u64 = 0;

/** mulHi:mulLo = a * b, by 32-bit halves. */
function mul64(a: u64, b: u64): void {
  let a0 = a & 0xffffffff, a1 = a >> 32;
  let b0 = b & 0xffffffff, b1 = b >> 32;
  let p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  let mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  mulLo = (mid << 32) | (p00 & 0xffffffff);
  mulHi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

export function fMul(a: u64, b: u64, dbl: bool, rm: u32): u64 {
  if (rm == RM_RNE) {
    if (dbl) {
      if (expIn(a, 1023 - 480, 1023 + 480) && expIn(b, 1023 - 480, 1023 + 480)) {
        let r = twoProd(reinterpret<f64>(a), reinterpret<f64>(b));
        if (tpErr != 0) sfFlags |= FLAG_NX;
        return reinterpret<u64>(r);
      }
    } else if (normalS(a) && normalS(b)) {
      let r = s2d(a) * s2d(b); // exact: 48-bit product
      let r32 = <f32>r;
      if (safeS(r32)) {
        if (<f64>r32 != r) sfFlags |= FLAG_NX;
        return <u64>reinterpret<u32>(r32);
      }
    }
  }
  if (isNaNF(a, dbl) || isNaNF(b, dbl)) return nanResult3(a, b, 0, dbl);
  let neg = (signOf(a, dbl) ^ signOf(b, dbl)) != 0;
  let sgn = neg ? signBit(dbl) : 0;
  if (isInfF(a, dbl) || isInfF(b, dbl)) {
    if (isZeroF(a, dbl) || isZeroF(b, dbl)) { sfFlags |= FLAG_NV; return cnan(dbl); }
    return infOf(dbl) | sgn;
  }
  if (isZeroF(a, dbl) || isZeroF(b, dbl)) return sgn;
  unpack(a, dbl);
  let ea = uExp, ma = uSig;
  unpack(b, dbl);
  let e = ea + uExp;
  mul64(ma, uSig); // < 2^106, leading 1 at bit 104 or 105
  let k: u64 = 42;
  if (mulHi >> 41) { k = 43; e++; }
  // Bring the leading 1 to bit 62, jamming the discarded low bits.
  let m = (mulHi << (64 - k)) | (mulLo >> k) | <u64>((mulLo & ((<u64>1 << k) - 1)) != 0);
  return roundPack(neg, e, m, dbl, rm);
}

export function fDiv(a: u64, b: u64, dbl: bool, rm: u32): u64 {
  if (rm == RM_RNE) {
    if (dbl) {
      if (expIn(a, 1023 - 480, 1023 + 480) && expIn(b, 1023 - 480, 1023 + 480)) {
        let x = reinterpret<f64>(a);
        let q = x / reinterpret<f64>(b);
        let p = twoProd(q, reinterpret<f64>(b));
        if (p != x || tpErr != 0) sfFlags |= FLAG_NX;
        return reinterpret<u64>(q);
      }
    } else if (normalS(a) && normalS(b)) {
      let x = s2d(a), y = s2d(b);
      let r32 = <f32>(x / y);
      if (safeS(r32)) {
        if (<f64>r32 * y != x) sfFlags |= FLAG_NX; // 48-bit product: exact
        return <u64>reinterpret<u32>(r32);
      }
    }
  }
  if (isNaNF(a, dbl) || isNaNF(b, dbl)) return nanResult3(a, b, 0, dbl);
  let neg = (signOf(a, dbl) ^ signOf(b, dbl)) != 0;
  let sgn = neg ? signBit(dbl) : 0;
  if (isInfF(a, dbl)) {
    if (isInfF(b, dbl)) { sfFlags |= FLAG_NV; return cnan(dbl); }
    return infOf(dbl) | sgn;
  }
  if (isInfF(b, dbl)) return sgn;
  if (isZeroF(b, dbl)) {
    if (isZeroF(a, dbl)) { sfFlags |= FLAG_NV; return cnan(dbl); }
    sfFlags |= FLAG_DZ;
    return infOf(dbl) | sgn;
  }
  if (isZeroF(a, dbl)) return sgn;
  unpack(a, dbl);
  let ea = uExp, ma = uSig;
  unpack(b, dbl);
  let mb = uSig;
  let e = ea - uExp;
  if (ma < mb) { ma <<= 1; e--; } // quotient now in [1, 2)
  // Long division, 11 quotient bits per step: the remainder stays < mb < 2^53,
  // so rem << 11 fits in 64 bits. 1 + 5*11 = 56 quotient bits (leading 1 at
  // bit 55) is 3 guard bits beyond binary64's 53; the remainder gives sticky.
  let q = ma / mb;
  let rem = ma % mb;
  for (let i = 0; i < 5; i++) {
    rem <<= 11;
    q = (q << 11) | (rem / mb);
    rem = rem % mb;
  }
  let m = (q << 7) | <u64>(rem != 0);
  return roundPack(neg, e, m, dbl, rm);
}

export function fSqrt(a: u64, dbl: bool, rm: u32): u64 {
  if (rm == RM_RNE) {
    // positive normal operands only (sign bit clear, exponent in range)
    if (dbl) {
      if (a >> 63 == 0 && expIn(a, 1023 - 480, 1023 + 480)) {
        let x = reinterpret<f64>(a);
        let r = Math.sqrt(x);
        let p = twoProd(r, r);
        if (p != x || tpErr != 0) sfFlags |= FLAG_NX;
        return reinterpret<u64>(r);
      }
    } else if (((a >> 31) & 1) == 0 && normalS(a)) {
      let x = s2d(a);
      let r32 = <f32>Math.sqrt(x);
      if (<f64>r32 * <f64>r32 != x) sfFlags |= FLAG_NX; // exact in binary64
      return <u64>reinterpret<u32>(r32);
    }
  }
  if (isNaNF(a, dbl)) return nanResult3(a, 0, 0, dbl);
  if (isZeroF(a, dbl)) return a; // sqrt(-0) = -0
  if (signOf(a, dbl)) { sfFlags |= FLAG_NV; return cnan(dbl); }
  if (isInfF(a, dbl)) return a;
  unpack(a, dbl);
  // |a| = M * 2^E with E even; root = floor(sqrt(M * 2^58)) has its leading
  // 1 at bit 55 (M in [2^52, 2^54) gives sqrt(M) in [2^26, 2^27)).
  let M = uSig;
  let E = uExp - 52;
  if (E & 1) { M <<= 1; E--; }
  // Digit-by-digit square root over the 112-bit radicand M << 58, two bits
  // per step. The partial remainder is <= 2*root < 2^57, so it never overflows.
  let rem: u64 = 0, root: u64 = 0;
  for (let i: i32 = 55; i >= 0; i--) {
    let sh = 2 * i - 58;
    let two: u64 = sh >= 0 ? (M >> <u64>sh) & 3 : 0;
    rem = (rem << 2) | two;
    let trial = (root << 2) | 1;
    root <<= 1;
    if (rem >= trial) { rem -= trial; root |= 1; }
  }
  let m = (root << 7) | <u64>(rem != 0);
  return roundPack(false, (E >> 1) + 26, m, dbl, rm);
}

// FMA fast path (RNE). The exact value a*b + c is ph + pl + c with
// (ph, pl) = TwoProduct(a, b); with (sh, sl) = TwoSum(ph, c) it is
// sh + (sl + pl). When sl + pl is itself exact (its TwoSum error is zero),
// RN(sh + (sl + pl)) rounds the exact value once: the native result is right,
// and NX is that last addition's TwoSum error. Otherwise, near the range
// limits, or for special operands, the integer path decides.
let fmaFastOk = false;

@inline function twoSumErr(x: f64, y: f64, s: f64): f64 {
  const yv = s - x;
  return (x - (s - yv)) + (y - yv);
}

function fmaFast(a: u64, b: u64, c: u64, dbl: bool): u64 {
  fmaFastOk = false;
  if (dbl) {
    if (!expIn(a, 1023 - 480, 1023 + 480) || !expIn(b, 1023 - 480, 1023 + 480)) return 0;
    const cz = (c << 1) == 0;
    if (!cz && !expIn(c, 1023 - 480, 1023 + 480)) return 0;
    const ph = twoProd(reinterpret<f64>(a), reinterpret<f64>(b));
    const pl = tpErr;
    if (cz) {
      // A nonzero exact product plus a zero: the product's rounding.
      if (pl != 0) sfFlags |= FLAG_NX;
      fmaFastOk = true;
      return reinterpret<u64>(ph);
    }
    const cf = reinterpret<f64>(c);
    const sh = ph + cf;
    const sl = twoSumErr(ph, cf, sh);
    const t = sl + pl;
    if (twoSumErr(sl, pl, t) != 0) return 0;
    const r = sh + t;
    const rb = reinterpret<u64>(r);
    // A result below 2^-1021 (tininess, subnormals) goes to the integer path; exact zero is +0 in RNE.
    if ((rb << 1) != 0 && ((rb >> 52) & 0x7ff) < 2) return 0;
    if (twoSumErr(sh, t, r) != 0) sfFlags |= FLAG_NX;
    fmaFastOk = true;
    return rb;
  }
  if (!normalS(a) || !normalS(b) || !normalS(c)) return 0;
  // binary32: the product is exact in binary64; if the binary64 sum is exact too,
  // narrowing it rounds the exact value once.
  const p = s2d(a) * s2d(b);
  const cf = s2d(c);
  const s = p + cf;
  if (twoSumErr(p, cf, s) != 0) return 0;
  const r32 = <f32>s;
  if (s != 0 && !safeS(r32)) return 0;
  if (<f64>r32 != s) sfFlags |= FLAG_NX;
  fmaFastOk = true;
  return <u64>reinterpret<u32>(r32);
}

/**
 * Fused multiply-add a*b + c with a single rounding. The FMADD/FMSUB/FNMSUB/
 * FNMADD variants are obtained by the caller flipping the signs of a and/or c
 * (harmless for NaNs, since NaN results are canonical anyway).
 */
export function fMulAdd(a: u64, b: u64, c: u64, dbl: bool, rm: u32): u64 {
  if (rm == RM_RNE) {
    const r = fmaFast(a, b, c, dbl);
    if (fmaFastOk) return r;
  }
  let infZero = (isInfF(a, dbl) && isZeroF(b, dbl)) || (isZeroF(a, dbl) && isInfF(b, dbl));
  if (isNaNF(a, dbl) || isNaNF(b, dbl) || isNaNF(c, dbl)) {
    // RISC-V: inf * 0 raises NV even when the addend is a quiet NaN.
    if (infZero) sfFlags |= FLAG_NV;
    return nanResult3(a, b, c, dbl);
  }
  if (infZero) { sfFlags |= FLAG_NV; return cnan(dbl); }
  let sp = signOf(a, dbl) ^ signOf(b, dbl);
  let sc = signOf(c, dbl);
  if (isInfF(a, dbl) || isInfF(b, dbl)) {
    if (isInfF(c, dbl) && sc != sp) { sfFlags |= FLAG_NV; return cnan(dbl); }
    return infOf(dbl) | (sp ? signBit(dbl) : 0);
  }
  if (isInfF(c, dbl)) return c;
  if (isZeroF(a, dbl) || isZeroF(b, dbl)) {
    // Exact zero product: c + (+-0).
    if (isZeroF(c, dbl)) return sp == sc ? c : exactZero(dbl, rm);
    return c;
  }
  unpack(a, dbl);
  let ea = uExp, ma = uSig;
  unpack(b, dbl);
  let pe = ea + uExp;
  mul64(ma, uSig);
  // Exact product in 128 bits with its leading 1 moved to bit 125.
  let ph: u64, pl: u64;
  if (mulHi >> 41) { pe++; ph = (mulHi << 20) | (mulLo >> 44); pl = mulLo << 20; }
  else { ph = (mulHi << 21) | (mulLo >> 43); pl = mulLo << 21; }
  if (isZeroF(c, dbl)) {
    // Product alone (the sign of a nonzero exact result is the product's).
    let m = (ph << 1) | (pl >> 63) | <u64>((pl << 1) != 0);
    return roundPack(sp != 0, pe, m, dbl, rm);
  }
  unpack(c, dbl);
  let ce = uExp;
  let ch = uSig << 9, cl: u64 = 0; // leading 1 at bit 125 as well
  // Big operand (larger magnitude) in (bh:bl, be, bs); small in (xh:xl, xe).
  let bh: u64, bl: u64, be: i32, bs: u64, xh: u64, xl: u64, xe: i32;
  if (pe > ce || (pe == ce && (ph > ch || (ph == ch && pl >= cl)))) {
    bh = ph; bl = pl; be = pe; bs = sp; xh = ch; xl = cl; xe = ce;
  } else {
    bh = ch; bl = cl; be = ce; bs = sc; xh = ph; xl = pl; xe = pe;
  }
  // Align the small operand (128-bit shift right with jamming). Shifts of up
  // to 20 are exact (the low 20 bits of both operands are zero); larger
  // shifts mean the subtraction below cancels at most one bit, so the sticky
  // bit is far below the rounding position.
  let d = be - xe;
  if (d >= 128) {
    xl = <u64>((xh | xl) != 0); xh = 0;
  } else if (d >= 64) {
    let sh = <u64>(d - 64);
    let lost = xl != 0 || (sh != 0 && (xh << (64 - sh)) != 0);
    xl = (xh >> sh) | <u64>lost; xh = 0;
  } else if (d > 0) {
    let sh = <u64>d;
    let lost = (xl << (64 - sh)) != 0;
    xl = (xl >> sh) | (xh << (64 - sh)) | <u64>lost;
    xh >>= sh;
  }
  let rh: u64, rl: u64;
  if (sp == sc) {
    // same signs: magnitudes add (may carry to bit 126)
    rl = bl + xl;
    rh = bh + xh + <u64>(rl < bl);
  } else {
    rl = bl - xl;
    rh = bh - xh - <u64>(bl < xl);
    if ((rh | rl) == 0) return exactZero(dbl, rm);
  }
  // Normalise the 128-bit sum to a 64-bit significand with leading 1 at 62.
  let L: i32 = rh != 0 ? 127 - <i32>clz(rh) : 63 - <i32>clz(rl); // leading bit index
  let m: u64;
  if (L > 62) {
    let sh = L - 62; // 1..64
    if (sh >= 64) {
      m = (rh >> <u64>(sh - 64)) | <u64>(rl != 0 || (sh > 64 && (rh << <u64>(128 - sh)) != 0));
    } else {
      m = (rh << <u64>(64 - sh)) | (rl >> <u64>sh) | <u64>((rl << <u64>(64 - sh)) != 0);
    }
  } else {
    m = rl << <u64>(62 - L); // rh == 0 here
  }
  return roundPack(bs != 0, be + L - 125, m, dbl, rm);
}

// ---------------------------------------------------------------------------
// Conversions

/** binary32 -> binary64 (exact), or binary64 -> binary32 (rounded). */
export function fCvtFF(a: u64, toDbl: bool, rm: u32): u64 {
  let from = !toDbl;
  if (isNaNF(a, from)) {
    if (isSNaNF(a, from)) sfFlags |= FLAG_NV;
    return cnan(toDbl);
  }
  let neg = signOf(a, from) != 0;
  let sgn = neg ? signBit(toDbl) : 0;
  if (isInfF(a, from)) return infOf(toDbl) | sgn;
  if (isZeroF(a, from)) return sgn;
  unpack(a, from);
  return roundPack(neg, uExp, uSig << 10, toDbl, rm);
}

/** Signed or unsigned 64-bit integer -> float. */
export function fFromInt(v: u64, signed: bool, dbl: bool, rm: u32): u64 {
  if (v == 0) return 0;
  let neg = signed && <i64>v < 0;
  let mag = neg ? 0 - v : v;
  let lz = <i32>clz(mag);
  let m = shrJam(mag << <u64>lz, 1); // leading 1 at bit 62
  return roundPack(neg, 63 - lz, m, dbl, rm);
}

/**
 * Float -> integer with RISC-V saturation. `bits` is 32 or 64, `signed`
 * selects W/L vs WU/LU. Returns the integer's two's-complement bits (32-bit
 * results are in the low 32 bits, not sign-extended).
 * NaN -> max positive; out of range -> max or min (0 for unsigned); NV for
 * those, NX for in-range inexact results.
 */
export function fToInt(a: u64, dbl: bool, bits: i32, signed: bool, rm: u32): u64 {
  let maxPos: u64 = signed ? (<u64>1 << <u64>(bits - 1)) - 1 : (bits == 64 ? <u64>-1 : 0xffffffff);
  let minNeg: u64 = signed ? (<u64>1 << <u64>(bits - 1)) : 0; // magnitude of the minimum
  if (isNaNF(a, dbl)) { sfFlags |= FLAG_NV; return maxPos; }
  let neg = signOf(a, dbl) != 0;
  if (isZeroF(a, dbl)) return 0;
  let invalid = false;
  let mag: u64 = 0;
  let inexact = false;
  if (isInfF(a, dbl)) {
    invalid = true;
  } else {
    unpack(a, dbl);
    let e = uExp;
    let sig = uSig << 10; // |a| = sig * 2^(e - 62)
    if (e >= 64) {
      invalid = true;
    } else if (e >= 62) {
      mag = sig << <u64>(e - 62); // exact
    } else {
      let n = 62 - e; // fraction bits to drop, >= 1
      let kept: u64, r: u64, half: u64;
      if (n >= 64) { kept = 0; r = 1; half = 2; } // 0 < |a| < 1/4
      else { kept = sig >> <u64>n; r = sig & ((<u64>1 << <u64>n) - 1); half = <u64>1 << <u64>(n - 1); }
      mag = kept + roundInc(neg, kept, r, half, rm);
      inexact = r != 0;
    }
    if (!invalid) {
      if (neg) invalid = mag > minNeg;
      else invalid = mag > maxPos;
    }
  }
  if (invalid) {
    sfFlags |= FLAG_NV;
    if (!neg) return maxPos;
    let v = signed ? (0 - minNeg) : 0;
    return bits == 32 ? v & 0xffffffff : v;
  }
  if (inexact) sfFlags |= FLAG_NX;
  let v = neg ? 0 - mag : mag;
  return bits == 32 ? v & 0xffffffff : v;
}

// ---------------------------------------------------------------------------
// Comparisons, min/max, classify

/** a < b for non-NaN operands (numeric: -0 and +0 compare equal). */
function ltNum(a: u64, b: u64, dbl: bool): bool {
  let sa = signOf(a, dbl), sb = signOf(b, dbl);
  let ma = absOf(a, dbl), mb = absOf(b, dbl);
  if ((ma | mb) == 0) return false;
  if (sa != sb) return sa != 0;
  return sa != 0 ? ma > mb : ma < mb;
}

/** FEQ: quiet comparison, NV only for signalling NaNs. */
export function fEq(a: u64, b: u64, dbl: bool): bool {
  if (isNaNF(a, dbl) || isNaNF(b, dbl)) {
    if (isSNaNF(a, dbl) || isSNaNF(b, dbl)) sfFlags |= FLAG_NV;
    return false;
  }
  return a == b || (absOf(a, dbl) | absOf(b, dbl)) == 0;
}

/** FLT: signalling comparison, NV for any NaN. */
export function fLt(a: u64, b: u64, dbl: bool): bool {
  if (isNaNF(a, dbl) || isNaNF(b, dbl)) { sfFlags |= FLAG_NV; return false; }
  return ltNum(a, b, dbl);
}

/** FLE: signalling comparison, NV for any NaN. */
export function fLe(a: u64, b: u64, dbl: bool): bool {
  if (isNaNF(a, dbl) || isNaNF(b, dbl)) { sfFlags |= FLAG_NV; return false; }
  return a == b || (absOf(a, dbl) | absOf(b, dbl)) == 0 || ltNum(a, b, dbl);
}

/**
 * FMIN/FMAX (IEEE 754-2019 minimumNumber/maximumNumber): a NaN operand is
 * ignored in favour of the other one, two NaNs give the canonical NaN, -0 is
 * below +0, and a signalling NaN input raises NV.
 */
export function fMinMax(a: u64, b: u64, dbl: bool, isMax: bool): u64 {
  let na = isNaNF(a, dbl), nb = isNaNF(b, dbl);
  if (na || nb) {
    if (isSNaNF(a, dbl) || isSNaNF(b, dbl)) sfFlags |= FLAG_NV;
    if (na && nb) return cnan(dbl);
    return na ? b : a;
  }
  // Order with -0 < +0: differing signs decide directly.
  let sa = signOf(a, dbl), sb = signOf(b, dbl);
  let aLess: bool;
  if (sa != sb) aLess = sa != 0;
  else aLess = sa != 0 ? absOf(a, dbl) > absOf(b, dbl) : absOf(a, dbl) < absOf(b, dbl);
  return (aLess != isMax) ? a : b;
}

/** FCLASS 10-bit mask. */
export function fClass(a: u64, dbl: bool): u64 {
  let neg = signOf(a, dbl) != 0;
  if (isNaNF(a, dbl)) return isSNaNF(a, dbl) ? 1 << 8 : 1 << 9;
  if (isInfF(a, dbl)) return neg ? 1 << 0 : 1 << 7;
  if (isZeroF(a, dbl)) return neg ? 1 << 3 : 1 << 4;
  if (bexpOf(a, dbl) == 0) return neg ? 1 << 2 : 1 << 5;
  return neg ? 1 << 1 : 1 << 6;
}

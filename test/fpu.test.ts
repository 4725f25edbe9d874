// Tests for the F/D execution unit (src/cpu/fpu.ts + src/cpu/softfloat.ts),
// compiled standalone into build/fpu-test.wasm by `npm run build:fpu-test`.
//
// The main check is against a real oracle: test/guest/fp-oracle is built with
// the riscv64 cross compiler and run under user-mode QEMU; it executes every
// F/D computational instruction (all rounding modes incl. dynamic, edge-case
// and random operands, improperly NaN-boxed inputs, illegal encodings) and
// prints the resulting register bits and fflags, which execFp must reproduce
// exactly.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

// dist/test/fpu.test.js -> repo root
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

// The repo's lib/types settings do not declare the WebAssembly global;
// describe the part used here.
interface WasmApi {
  Memory: new (d: { initial: number }) => { buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface FpuExports {
  exec(insn: number): number;
  stateBase(): number;
  fOff(): number;
  xOff(): number;
  fflagsOff(): number;
  frmOff(): number;
}

function loadFpu() {
  const wasm = readFileSync(path.join(ROOT, "build/fpu-test.wasm"));
  const memory = new WA.Memory({ initial: 17 });
  const inst = new WA.Instance(new WA.Module(wasm), {
    env: {
      memory,
      abort: () => { throw new Error("wasm abort"); },
    },
  });
  const ex = inst.exports as unknown as FpuExports;
  const base = ex.stateBase();
  const u64 = new BigUint64Array(memory.buffer);
  const u32 = new Uint32Array(memory.buffer);
  const xi = (base + ex.xOff()) / 8;
  const fi = (base + ex.fOff()) / 8;
  const flagsI = (base + ex.fflagsOff()) / 4;
  const frmI = (base + ex.frmOff()) / 4;
  return {
    exec: (insn: number) => ex.exec(insn >>> 0) !== 0,
    getX: (r: number) => u64[xi + r],
    setX: (r: number, v: bigint) => { u64[xi + r] = BigInt.asUintN(64, v); },
    getF: (r: number) => u64[fi + r],
    setF: (r: number, v: bigint) => { u64[fi + r] = BigInt.asUintN(64, v); },
    get fflags() { return u32[flagsI]; },
    set fflags(v: number) { u32[flagsI] = v; },
    get frm() { return u32[frmI]; },
    set frm(v: number) { u32[frmI] = v; },
  };
}
type Fpu = ReturnType<typeof loadFpu>;

// Encoders (rd, rs1, rs2, rs3 given explicitly).
function rtype(f5: number, fmt: number, rs2: number, rs1: number, rm: number, rd: number): number {
  return ((f5 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | 0x53) >>> 0;
}
function r4type(op: number, fmt: number, rs3: number, rs2: number, rs1: number, rm: number, rd: number): number {
  return ((rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | op) >>> 0;
}
const BOX = 0xffffffff00000000n;
const f64bits = (d: number) => {
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, d);
  return b.getBigUint64(0);
};
const f32bits = (f: number) => {
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, f);
  return BigInt(b.getUint32(0));
};
const hex = (v: bigint) => "0x" + v.toString(16);

test("hand-checked cases", () => {
  const cpu = loadFpu();
  const run = (insn: number) => {
    cpu.fflags = 0;
    assert.equal(cpu.exec(insn), true, `insn ${insn.toString(16)} should execute`);
  };
  // fadd.d f1 = f2 + f3 (RNE): 0.1 + 0.2 = 0.30000000000000004, inexact
  cpu.setF(2, f64bits(0.1));
  cpu.setF(3, f64bits(0.2));
  run(rtype(0, 1, 3, 2, 0, 1));
  assert.equal(hex(cpu.getF(1)), hex(0x3fd3333333333334n));
  assert.equal(cpu.fflags, 1);
  // same with RTZ / RDN: truncated
  run(rtype(0, 1, 3, 2, 1, 1));
  assert.equal(hex(cpu.getF(1)), hex(0x3fd3333333333333n));
  // 1.0 + 2.0 = 3.0 exact
  cpu.setF(2, f64bits(1));
  cpu.setF(3, f64bits(2));
  run(rtype(0, 1, 3, 2, 0, 1));
  assert.equal(cpu.getF(1), f64bits(3));
  assert.equal(cpu.fflags, 0);
  // fdiv.d 1/0 -> +inf, DZ
  cpu.setF(3, 0n);
  run(rtype(3, 1, 3, 2, 0, 1));
  assert.equal(hex(cpu.getF(1)), hex(0x7ff0000000000000n));
  assert.equal(cpu.fflags, 8);
  // fsqrt.s of -1 -> canonical NaN (boxed), NV
  cpu.setF(2, BOX | f32bits(-1));
  run(rtype(0x0b, 0, 0, 2, 0, 1));
  assert.equal(hex(cpu.getF(1)), hex(0xffffffff7fc00000n));
  assert.equal(cpu.fflags, 16);
  // fadd.s with an improperly boxed operand reads it as the canonical NaN (quiet: no NV)
  cpu.setF(2, f64bits(1));
  cpu.setF(3, BOX | f32bits(1));
  run(rtype(0, 0, 3, 2, 0, 1));
  assert.equal(hex(cpu.getF(1)), hex(0xffffffff7fc00000n));
  assert.equal(cpu.fflags, 0);
  // fmul.s with dynamic rm: frm = RUP, 1/3 rounded up
  cpu.frm = 3;
  cpu.setF(2, BOX | f32bits(1));
  cpu.setF(3, BOX | f32bits(3));
  run(rtype(3, 0, 3, 2, 7, 1));
  assert.equal(hex(cpu.getF(1)), hex(BOX | 0x3eaaaaabn));
  assert.equal(cpu.fflags, 1);
  cpu.frm = 0;
  // fcvt.w.d of NaN -> 0x7fffffff, NV; of -inf -> INT32_MIN sign-extended
  cpu.setF(2, 0x7ff8000000000000n);
  run(rtype(0x18, 1, 0, 2, 1, 5));
  assert.equal(hex(cpu.getX(5)), hex(0x7fffffffn));
  assert.equal(cpu.fflags, 16);
  cpu.setF(2, 0xfff0000000000000n);
  run(rtype(0x18, 1, 0, 2, 1, 5));
  assert.equal(hex(cpu.getX(5)), hex(0xffffffff80000000n));
  // fcvt.wu.d of 2^32-1 fits, result sign-extended to 64 bits
  cpu.setF(2, f64bits(4294967295));
  run(rtype(0x18, 1, 1, 2, 1, 5));
  assert.equal(hex(cpu.getX(5)), hex(0xffffffffffffffffn));
  assert.equal(cpu.fflags, 0);
  // fcvt.wu.s of -0.25 (RTZ) -> 0, NX only (not invalid)
  cpu.setF(2, BOX | f32bits(-0.25));
  run(rtype(0x18, 0, 1, 2, 1, 5));
  assert.equal(cpu.getX(5), 0n);
  assert.equal(cpu.fflags, 1);
  // fmv.x.w sign-extends the raw low 32 bits, no NaN-box check
  cpu.setF(2, 0x12345678_80000001n);
  run(rtype(0x1c, 0, 0, 2, 0, 5));
  assert.equal(hex(cpu.getX(5)), hex(0xffffffff80000001n));
  // fmv.w.x boxes
  cpu.setX(6, 0xdeadbeef_3f800000n);
  run(rtype(0x1e, 0, 0, 6, 0, 4));
  assert.equal(hex(cpu.getF(4)), hex(BOX | 0x3f800000n));
  // feq.d writes 1; writes to x0 are dropped
  cpu.setF(2, f64bits(-0));
  cpu.setF(3, f64bits(0));
  run(rtype(0x14, 1, 3, 2, 2, 5));
  assert.equal(cpu.getX(5), 1n);
  run(rtype(0x14, 1, 3, 2, 2, 0));
  assert.equal(cpu.getX(0), 0n);
  // fmin.d(-0, +0) = -0; fmax = +0
  run(rtype(5, 1, 3, 2, 0, 1));
  assert.equal(hex(cpu.getF(1)), hex(0x8000000000000000n));
  run(rtype(5, 1, 3, 2, 1, 1));
  assert.equal(cpu.getF(1), 0n);
  // fmadd.d: (1 + 2^-30)(1 - 2^-30) - 1 = -2^-60 exactly when fused
  // (a separately rounded product would be 1.0, giving 0).
  cpu.setF(2, f64bits(1 + 2 ** -30));
  cpu.setF(3, f64bits(1 - 2 ** -30));
  cpu.setF(4, f64bits(-1));
  run(r4type(0x43, 1, 4, 3, 2, 0, 1));
  assert.equal(cpu.getF(1), f64bits(-(2 ** -60)));
  assert.equal(cpu.fflags, 0);
  // fclass.d of a negative subnormal
  cpu.setF(2, 0x8000000000000001n);
  run(rtype(0x1c, 1, 0, 2, 1, 5));
  assert.equal(cpu.getX(5), 4n);
  // Tininess is detected after rounding: (1 - 2^-52) * (1 + 2^-52) * 2^-1022
  // = 2^-1022 - 2^-1126. In RNE it rounds (with unbounded exponent, too) to
  // 2^-1022, so it is not tiny: NX only. In RTZ it stays below 2^-1022: UF|NX.
  cpu.setF(2, 0x3feffffffffffffen);
  cpu.setF(3, 0x0010000000000001n);
  run(rtype(2, 1, 3, 2, 0, 1));
  assert.equal(hex(cpu.getF(1)), hex(0x0010000000000000n));
  assert.equal(cpu.fflags, 1);
  run(rtype(2, 1, 3, 2, 1, 1));
  assert.equal(hex(cpu.getF(1)), hex(0x000fffffffffffffn));
  assert.equal(cpu.fflags, 3);
});

test("illegal encodings return false and leave state untouched", () => {
  const cpu = loadFpu();
  cpu.setF(1, 0x1111n);
  cpu.setX(1, 0x2222n);
  cpu.setF(2, f64bits(1));
  cpu.setF(3, f64bits(1));
  cpu.setX(2, 5n);
  const illegal = [
    rtype(0, 2, 3, 2, 0, 1), // fadd.h
    rtype(0, 3, 3, 2, 0, 1), // fadd.q
    r4type(0x43, 2, 3, 3, 2, 0, 1), // fmadd.h
    rtype(0, 1, 3, 2, 5, 1), // rm = 5
    rtype(0, 1, 3, 2, 6, 1), // rm = 6
    rtype(0x1e, 0, 1, 0, 0, 1), // Zfa fli.s (not implemented)
    rtype(5, 1, 3, 2, 2, 1), // Zfa fminm.d
    rtype(0x08, 1, 4, 2, 0, 1), // Zfa fround.d
    rtype(0x14, 1, 3, 2, 4, 1), // Zfa fleq.d
    rtype(0x1c, 1, 1, 2, 0, 1), // fmv.x.d with rs2 = 1
    rtype(0x1c, 0, 0, 2, 2, 1), // funct3 = 2
    rtype(0x1a, 1, 5, 2, 0, 1), // fcvt.d.? rs2 = 5
    rtype(0x08, 0, 0, 2, 0, 1), // fcvt.s.s
    rtype(0x0b, 1, 2, 2, 0, 1), // fsqrt with rs2 != 0
    rtype(0x10, 1, 3, 2, 0, 1), // unused funct5
    0x0000_0013, // not an FP opcode (addi)
  ];
  for (const insn of illegal) {
    cpu.fflags = 0;
    assert.equal(cpu.exec(insn), false, `0x${insn.toString(16)} must be illegal`);
    assert.equal(cpu.getF(1), 0x1111n);
    assert.equal(cpu.getX(1), 0x2222n);
    assert.equal(cpu.fflags, 0);
  }
  // dynamic rm with an invalid frm is illegal; with a valid one it executes
  for (const frm of [5, 6, 7]) {
    cpu.frm = frm;
    assert.equal(cpu.exec(rtype(0, 1, 3, 2, 7, 1)), false);
    assert.equal(cpu.getF(1), 0x1111n);
    // instructions without a rounding mode do not care about frm
    assert.equal(cpu.exec(rtype(4, 1, 3, 2, 0, 4)), true);
  }
  cpu.frm = 4;
  assert.equal(cpu.exec(rtype(0, 1, 3, 2, 7, 1)), true);
  assert.equal(cpu.getF(1), f64bits(2));
});

/** Build the oracle and run it under QEMU; returns its output lines. */
function runOracle(): string[] {
  const cc = "riscv64-linux-gnu-gcc";
  const qemu = "qemu-riscv64";
  for (const tool of [cc, qemu]) {
    const r = spawnSync("sh", ["-c", `command -v ${tool}`]);
    assert.equal(r.status, 0, `${tool} is required for the FP oracle test (Debian: gcc-riscv64-linux-gnu, qemu-user)`);
  }
  const dir = path.join(ROOT, "test/guest/fp-oracle");
  const out = path.join(ROOT, "build/fp-oracle");
  if (!existsSync(path.join(ROOT, "build"))) mkdirSync(path.join(ROOT, "build"));
  const b = spawnSync(cc, ["-static", "-O2", "-Wall", "-march=rv64gc", "-mabi=lp64d", "-o", out,
    path.join(dir, "oracle.c"), path.join(dir, "exec.S")], { encoding: "utf8" });
  assert.equal(b.status, 0, `oracle build failed:\n${b.stderr}`);
  const r = spawnSync(qemu, [out], { encoding: "utf8", maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `oracle run failed:\n${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l.length > 0);
}

test("execFp matches the real ISA (oracle under QEMU) bit for bit", () => {
  const lines = runOracle();
  assert.ok(lines.length > 100000, `too few oracle cases: ${lines.length}`);
  const cpu = loadFpu();
  const seen = new Map<string, number>();
  const failures: string[] = [];
  let nfail = 0;
  for (const line of lines) {
    const t = line.split(" ");
    // NAME INSN A B C FRM -> X F FLAGS | ILL
    const name = t[0];
    const insn = parseInt(t[1], 16);
    const a = BigInt("0x" + t[2]), b = BigInt("0x" + t[3]), c = BigInt("0x" + t[4]);
    const frm = parseInt(t[5], 16);
    for (const [r, v] of [[11, a], [12, b], [13, c]] as const) {
      cpu.setX(r, v);
      cpu.setF(r, v);
    }
    cpu.setX(10, 0n);
    cpu.setF(10, 0n);
    cpu.fflags = 0;
    cpu.frm = frm;
    const ok = cpu.exec(insn);
    seen.set(name, (seen.get(name) ?? 0) + 1);
    let got: string, want: string;
    if (t[7] === "ILL") {
      want = "ILL";
      got = ok ? "executed" : (cpu.getX(10) === 0n && cpu.getF(10) === 0n && cpu.fflags === 0 ? "ILL" : "ILL-but-state-modified");
    } else {
      want = `${t[7]} ${t[8]} ${t[9]}`;
      got = ok
        ? `${cpu.getX(10).toString(16).padStart(16, "0")} ${cpu.getF(10).toString(16).padStart(16, "0")} ${cpu.fflags.toString(16)}`
        : "ILL";
    }
    if (got !== want) {
      nfail++;
      if (failures.length < 40) failures.push(`${t.slice(0, 6).join(" ")}: want ${want}, got ${got}`);
    }
  }
  // every instruction must have been covered
  const required = [
    "fadd", "fsub", "fmul", "fdiv", "fsqrt", "fmadd", "fmsub", "fnmsub", "fnmadd",
    "fsgnj", "fsgnjn", "fsgnjx", "fmin", "fmax", "fle", "flt", "feq", "fclass",
    "fcvt.w", "fcvt.wu", "fcvt.l", "fcvt.lu",
  ];
  for (const op of required) {
    for (const sfx of [".s", ".d"]) assert.ok((seen.get(op + sfx) ?? 0) > 0, `no oracle cases for ${op}${sfx}`);
  }
  for (const op of ["fcvt.s.w", "fcvt.s.wu", "fcvt.s.l", "fcvt.s.lu", "fcvt.d.w", "fcvt.d.wu", "fcvt.d.l",
    "fcvt.d.lu", "fcvt.s.d", "fcvt.d.s", "fmv.x.s", "fmv.x.d", "fmv.s.x", "fmv.d.x"]) {
    assert.ok((seen.get(op) ?? 0) > 0, `no oracle cases for ${op}`);
  }
  assert.equal(nfail, 0, `${nfail} of ${lines.length} oracle cases differ:\n${failures.join("\n")}`);
});

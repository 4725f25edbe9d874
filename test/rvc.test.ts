// Tests for the RVC expander (src/cpu/rvc.ts), compiled to build/rvc-test.wasm
// by `npm run build:rvc-test`.
//
// Oracle: the riscv64 GNU binutils (riscv64-linux-gnu-as / -objdump /
// -objcopy, Debian package binutils-riscv64-linux-gnu), used two ways:
//
//  1. A generated list of compressed instructions (every RV64C instruction,
//     a range of registers and immediates including the extremes) is
//     assembled once as written (c.* mnemonics -> 16-bit) and once translated
//     to the base instruction named by the spec's expansion, under
//     `.option norvc` (-> 32-bit). expandCompressed(16-bit) must equal the
//     32-bit word.
//  2. All 49152 halfwords with low bits != 11 are disassembled by objdump
//     (-M no-aliases, arch rv64gc pinned by the object's attributes). Where
//     objdump decodes an instruction, its text is translated to the base form
//     and re-assembled with norvc; expandCompressed must give that word.
//     Where objdump reports no instruction (`.2byte`, `.insn`, `unknown`,
//     `c.unimp`) expandCompressed must return 0.
//
// Deliberate difference from objdump (binutils 2.40): 0x6101, printed as
// `c.addi16sp sp,0`, is reserved by the ISA manual (C.ADDI16SP requires
// nzimm != 0), so expandCompressed returns 0 for it. The test lists such
// halfwords explicitly in SPEC_RESERVED below.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CpuCore } from "../src/machine/cpu-core.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WASM = join(ROOT, "build", "rvc-test.wasm");

const AS = "riscv64-linux-gnu-as";
const OBJDUMP = "riscv64-linux-gnu-objdump";
const OBJCOPY = "riscv64-linux-gnu-objcopy";

/** Halfwords objdump decodes but the ISA manual reserves (we return 0). */
const SPEC_RESERVED = new Map<number, string>([
  [0x6101, "C.ADDI16SP with nzimm=0 is reserved"],
]);

type Expand = (h: number) => number;
let expand: Expand;
let tmp: string;

function haveTool(name: string): boolean {
  try {
    execFileSync(name, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  for (const t of [AS, OBJDUMP, OBJCOPY]) {
    assert.ok(haveTool(t), `${t} not found: install the binutils-riscv64-linux-gnu package`);
  }
  const bytes = readFileSync(WASM);
  // The repo's lib/types settings do not declare the WebAssembly global.
  const WA = (globalThis as unknown as {
    WebAssembly: { instantiate(b: Uint8Array, imports: object): Promise<{ instance: { exports: Record<string, unknown> } }> };
  }).WebAssembly;
  const { instance } = await WA.instantiate(bytes, {});
  const fn = instance.exports.expandCompressed as (h: number) => number;
  expand = (h: number) => fn(h) >>> 0;
  mkdirSync(join(ROOT, "build"), { recursive: true });
  tmp = mkdtempSync(join(ROOT, "build", "rvc-oracle-"));
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Assemble `src` (rv64gc, no linker relaxation) and return the raw .text bytes. */
function assemble(name: string, src: string): Buffer {
  const s = join(tmp, `${name}.s`);
  const o = join(tmp, `${name}.o`);
  const bin = join(tmp, `${name}.bin`);
  writeFileSync(s, src);
  const r = spawnSync(AS, ["-march=rv64gc", "-mno-relax", "-o", o, s], { encoding: "utf8", maxBuffer: 256 << 20 });
  if (r.status !== 0 || r.stderr) {
    const msg = (r.stderr || String(r.error)).split("\n").slice(0, 20).join("\n");
    throw new Error(`assembling ${name}.s failed:\n${msg}`);
  }
  execFileSync(OBJCOPY, ["-O", "binary", "-j", ".text", o, bin]);
  return readFileSync(bin);
}

function hex(v: number, digits: number): string {
  return "0x" + v.toString(16).padStart(digits, "0");
}

function rel(off: number): string {
  return off < 0 ? `.-${-off}` : `.+${off}`;
}

/**
 * Translate a compressed instruction (no-aliases syntax: mnemonic plus
 * operands; a branch/jump target given as a byte offset from the instruction)
 * into the base instruction the ISA manual gives as its expansion.
 */
function toBase(mn: string, ops: string[]): string {
  const base = mn.slice(2);
  switch (mn) {
    case "c.addi4spn": return `addi ${ops[0]},${ops[1]},${ops[2]}`;
    case "c.fld": case "c.lw": case "c.ld": case "c.fsd": case "c.sw": case "c.sd":
      return `${base} ${ops[0]},${ops[1]}`;
    case "c.fldsp": case "c.lwsp": case "c.ldsp": case "c.fsdsp": case "c.swsp": case "c.sdsp":
      return `${base.slice(0, -2)} ${ops[0]},${ops[1]}`;
    case "c.nop": return "addi zero,zero,0";
    case "c.addi": case "c.addiw": case "c.andi": case "c.srli": case "c.srai": case "c.slli":
      return `${base} ${ops[0]},${ops[0]},${ops[1]}`;
    case "c.addi16sp": return `addi sp,sp,${ops[1]}`;
    case "c.srli64": case "c.srai64": case "c.slli64":
      return `${mn.slice(2, 6)} ${ops[0]},${ops[0]},0`;
    case "c.li": return `addi ${ops[0]},zero,${ops[1]}`;
    case "c.lui": return `lui ${ops[0]},${ops[1]}`;
    case "c.sub": case "c.xor": case "c.or": case "c.and": case "c.subw": case "c.addw": case "c.add":
      return `${base} ${ops[0]},${ops[0]},${ops[1]}`;
    case "c.mv": return `add ${ops[0]},zero,${ops[1]}`;
    case "c.j": return `jal zero,${rel(Number(ops[0]))}`;
    case "c.beqz": return `beq ${ops[0]},zero,${rel(Number(ops[1]))}`;
    case "c.bnez": return `bne ${ops[0]},zero,${rel(Number(ops[1]))}`;
    case "c.jr": return `jalr zero,0(${ops[0]})`;
    case "c.jalr": return `jalr ra,0(${ops[0]})`;
    case "c.ebreak": return "ebreak";
    default: throw new Error(`no expansion known for ${mn} ${ops.join(",")}`);
  }
}

function isBranch(mn: string): boolean {
  return mn === "c.j" || mn === "c.beqz" || mn === "c.bnez";
}

// ---------------------------------------------------------------- generator

const CREG = ["s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5"];
const CFREG = ["fs0", "fs1", "fa0", "fa1", "fa2", "fa3", "fa4", "fa5"];
const XREG = Array.from({ length: 32 }, (_, i) => `x${i}`);
const FREG = Array.from({ length: 32 }, (_, i) => `f${i}`);
const XSAMPLE = ["x0", "ra", "sp", "gp", "tp", "t0", "s0", "a0", "a5", "s2", "s11", "t3", "t6"];
const XSAMPLE_NZ = XSAMPLE.filter((r) => r !== "x0");

function range(lo: number, hi: number, step = 1): number[] {
  const out: number[] = [];
  for (let v = lo; v <= hi; v += step) out.push(v);
  return out;
}

interface Case { mn: string; ops: string[]; }

function generate(): Case[] {
  const c: Case[] = [];
  const add = (mn: string, ...ops: (string | number)[]) => c.push({ mn, ops: ops.map(String) });

  // quadrant 0
  for (const rd of CREG) for (const imm of range(4, 1020, 4)) add("c.addi4spn", rd, "sp", imm);
  for (const rs of CREG) {
    for (const r of CREG) {
      for (const off of range(0, 248, 8)) {
        add("c.ld", r, `${off}(${rs})`);
        add("c.sd", r, `${off}(${rs})`);
      }
      for (const off of range(0, 124, 4)) {
        add("c.lw", r, `${off}(${rs})`);
        add("c.sw", r, `${off}(${rs})`);
      }
    }
    for (const f of CFREG) {
      for (const off of range(0, 248, 8)) {
        add("c.fld", f, `${off}(${rs})`);
        add("c.fsd", f, `${off}(${rs})`);
      }
    }
  }

  // quadrant 1
  add("c.nop");
  for (const rd of XSAMPLE_NZ) {
    for (const imm of range(-32, 31)) {
      if (imm !== 0) add("c.addi", rd, imm);
      add("c.addiw", rd, imm);
      add("c.li", rd, imm);
    }
  }
  for (const rd of XREG.slice(1)) {
    add("c.addi", rd, -32);
    add("c.addi", rd, 31);
    add("c.addiw", rd, -1);
    add("c.li", rd, 17);
  }
  for (const imm of range(-512, 496, 16)) if (imm !== 0) add("c.addi16sp", "sp", imm);
  for (const rd of XSAMPLE_NZ) {
    if (rd === "sp") continue;
    for (const imm of [...range(1, 31), ...range(0xfffe0, 0xfffff)]) add("c.lui", rd, hex(imm, 1));
  }
  for (const rd of XREG.slice(3)) { add("c.lui", rd, "0x1"); add("c.lui", rd, "0xfffe0"); }
  for (const rd of CREG) {
    for (const sh of range(1, 63)) { add("c.srli", rd, sh); add("c.srai", rd, sh); }
    for (const imm of range(-32, 31)) add("c.andi", rd, imm);
    for (const rs of CREG) {
      for (const mn of ["c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw"]) add(mn, rd, rs);
    }
  }
  for (const off of range(-2048, 2046, 2)) add("c.j", off);
  for (const rs of CREG) {
    for (const off of range(-256, 254, 2)) { add("c.beqz", rs, off); add("c.bnez", rs, off); }
  }

  // quadrant 2
  for (const rd of XSAMPLE_NZ) for (const sh of range(1, 63)) add("c.slli", rd, sh);
  for (const rd of XREG.slice(1)) { add("c.slli", rd, 1); add("c.slli", rd, 63); }
  for (const f of FREG) for (const off of [0, 8, 64, 256, 504]) { add("c.fldsp", f, `${off}(sp)`); add("c.fsdsp", f, `${off}(sp)`); }
  for (const f of ["f0", "f31"]) for (const off of range(0, 504, 8)) { add("c.fldsp", f, `${off}(sp)`); add("c.fsdsp", f, `${off}(sp)`); }
  for (const rd of XREG.slice(1)) {
    for (const off of [0, 4, 128, 252]) add("c.lwsp", rd, `${off}(sp)`);
    for (const off of [0, 8, 256, 504]) add("c.ldsp", rd, `${off}(sp)`);
  }
  for (const r of XREG) {
    for (const off of [0, 4, 128, 252]) add("c.swsp", r, `${off}(sp)`);
    for (const off of [0, 8, 256, 504]) add("c.sdsp", r, `${off}(sp)`);
  }
  for (const rd of ["a0", "x31"]) {
    for (const off of range(0, 252, 4)) { add("c.lwsp", rd, `${off}(sp)`); add("c.swsp", rd, `${off}(sp)`); }
    for (const off of range(0, 504, 8)) { add("c.ldsp", rd, `${off}(sp)`); add("c.sdsp", rd, `${off}(sp)`); }
  }
  for (const rs of XREG.slice(1)) { add("c.jr", rs); add("c.jalr", rs); }
  for (const rd of XREG.slice(1)) {
    for (const rs of XREG.slice(1)) { add("c.mv", rd, rs); add("c.add", rd, rs); }
  }
  add("c.ebreak");
  return c;
}

function asmLine(k: Case, base: boolean): string {
  if (base) return "  " + toBase(k.mn, k.ops);
  const ops = k.ops.slice();
  if (isBranch(k.mn)) ops[ops.length - 1] = rel(Number(ops[ops.length - 1]));
  return `  ${k.mn} ${ops.join(",")}`;
}

function words16(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) out.push(b.readUInt16LE(i));
  return out;
}

function words32(b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 3 < b.length; i += 4) out.push(b.readUInt32LE(i));
  return out;
}

// -------------------------------------------------------------------- tests

test("generated RV64C instructions expand like the assembler's uncompressed forms", () => {
  const cases = generate();
  assert.ok(cases.length > 20000, `only ${cases.length} cases generated`);
  const small = words16(assemble("gen-rvc", cases.map((k) => asmLine(k, false)).join("\n") + "\n"));
  const big = words32(assemble("gen-norvc", ".option norvc\n" + cases.map((k) => asmLine(k, true)).join("\n") + "\n"));
  assert.equal(small.length, cases.length, "every compressed line must assemble to exactly 2 bytes");
  assert.equal(big.length, cases.length, "every base line must assemble to exactly 4 bytes");
  const seen = new Set<string>();
  const failures: string[] = [];
  for (let i = 0; i < cases.length; i++) {
    seen.add(cases[i].mn);
    const got = expand(small[i]);
    if (got !== big[i]) {
      failures.push(`${asmLine(cases[i], false).trim()} (${hex(small[i], 4)}): got ${hex(got, 8)}, want ${hex(big[i], 8)} (${toBase(cases[i].mn, cases[i].ops)})`);
    }
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} mismatches`);
  const all = ["c.addi4spn", "c.fld", "c.lw", "c.ld", "c.fsd", "c.sw", "c.sd", "c.nop", "c.addi", "c.addiw",
    "c.li", "c.addi16sp", "c.lui", "c.srli", "c.srai", "c.andi", "c.sub", "c.xor", "c.or", "c.and", "c.subw",
    "c.addw", "c.j", "c.beqz", "c.bnez", "c.slli", "c.fldsp", "c.lwsp", "c.ldsp", "c.jr", "c.mv", "c.ebreak",
    "c.jalr", "c.add", "c.fsdsp", "c.swsp", "c.sdsp"];
  for (const mn of all) assert.ok(seen.has(mn), `generator lacks ${mn}`);
});

test("all 16-bit encodings agree with objdump (valid -> re-assembled base form, invalid -> 0)", () => {
  const halves: number[] = [];
  for (let h = 0; h < 0x10000; h++) if ((h & 3) !== 3) halves.push(h);
  const src = halves.map((h) => `  .insn 2, ${hex(h, 4)}`).join("\n") + "\n";
  assemble("all", src);
  const listing = execFileSync(OBJDUMP, ["-d", "-M", "no-aliases", join(tmp, "all.o")], {
    encoding: "utf8",
    maxBuffer: 256 << 20,
  });

  const lineRe = /^\s*([0-9a-f]+):\t([0-9a-f]{4})\s*\t(\S+)(?:\t(.*))?$/;
  const valid: { h: number; mn: string; ops: string[] }[] = [];
  const invalid: number[] = [];
  let parsed = 0;
  for (const line of listing.split("\n")) {
    const m = lineRe.exec(line);
    if (!m) continue;
    const pc = parseInt(m[1], 16);
    const h = parseInt(m[2], 16);
    assert.equal(h, halves[parsed], `listing out of step at ${m[1]}`);
    assert.equal(pc, parsed * 2);
    parsed++;
    const mn = m[3];
    if (mn === ".2byte" || mn === ".insn" || mn === "c.unimp" || mn === "unimp" || line.includes("unknown")) {
      invalid.push(h);
      continue;
    }
    if (SPEC_RESERVED.has(h)) {
      invalid.push(h);
      continue;
    }
    let ops = m[4] ? m[4].split(",").map((s) => s.trim()) : [];
    if (isBranch(mn)) {
      // target printed as an absolute address, e.g. "0x1f0" or "fffffffffffff80a <.text+...>"
      const last = ops[ops.length - 1].split(/\s+/)[0];
      const target = BigInt(last.startsWith("0x") ? last : "0x" + last);
      const off = BigInt.asIntN(64, target - BigInt(pc));
      ops = ops.slice(0, -1).concat(String(off));
    }
    valid.push({ h, mn, ops });
  }
  assert.equal(parsed, halves.length, "objdump listing incomplete");
  assert.ok(valid.length > 45000, `only ${valid.length} valid encodings (objdump arch not rv64gc?)`);

  // invalid per objdump (or per the spec list) -> 0
  const badInvalid = invalid.filter((h) => expand(h) !== 0).map((h) => `${hex(h, 4)} -> ${hex(expand(h), 8)}`);
  assert.deepEqual(badInvalid.slice(0, 20), [], `${badInvalid.length} invalid encodings expanded`);

  // valid -> re-assembled base form
  const baseSrc = ".option norvc\n" + valid.map((v) => "  " + toBase(v.mn, v.ops)).join("\n") + "\n";
  const big = words32(assemble("all-norvc", baseSrc));
  assert.equal(big.length, valid.length);
  const failures: string[] = [];
  for (let i = 0; i < valid.length; i++) {
    const got = expand(valid[i].h);
    if (got !== big[i]) {
      failures.push(`${hex(valid[i].h, 4)} ${valid[i].mn} ${valid[i].ops.join(",")}: got ${hex(got, 8)}, want ${hex(big[i], 8)}`);
    }
  }
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} mismatches`);
  assert.equal(valid.length + invalid.length, 49152);
});

test("spot checks and out-of-contract inputs", () => {
  assert.equal(expand(0x0000), 0, "all-zero halfword is illegal");
  assert.equal(expand(0x0001), 0x00000013, "c.nop -> addi x0,x0,0");
  assert.equal(expand(0x9002), 0x00100073, "c.ebreak");
  assert.equal(expand(0x8082), 0x00008067, "c.jr ra (ret)");
  assert.equal(expand(0x6101), 0, "c.addi16sp sp,0 reserved");
  assert.equal(expand(0x6001), 0, "c.lui x0,0 reserved");
  assert.equal(expand(0x2001), 0, "c.addiw x0 reserved");
  assert.equal(expand(0x4002), 0, "c.lwsp x0 reserved");
  assert.equal(expand(0x6002), 0, "c.ldsp x0 reserved");
  assert.equal(expand(0x8002), 0, "c.jr x0 reserved");
  assert.equal(expand(0x9c41), 0, "reserved CA slot");
  assert.equal(expand(0x0003), 0, "32-bit instruction is not compressed");
  // upper 16 bits of the argument are ignored
  assert.equal(expand(0xabcd0001), 0x00000013);
});

test("the core's expansion cache (filled on first use) agrees with the expander for every encoding, first and second look-up", () => {
  const core = new CpuCore(new Uint8Array(readFileSync(join(ROOT, "build", "cpu.wasm"))), 1 << 20, { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} });
  core.reset(0x8000_0000n);
  for (const pass of ["first", "cached"]) {
    for (let h = 0; h < 0x10000; h++) {
      const want = (h & 3) === 3 ? 0 : expand(h);
      const got = core.exports.rvcExpand(h) >>> 0;
      if (got !== want) assert.fail(`${pass} look-up of ${h.toString(16)}: ${got.toString(16)}, expected ${want.toString(16)}`);
    }
  }
});

// Runs a static RISC-V ELF as a bare user-mode process (like qemu-riscv64 does,
// for the small subset of Linux syscalls our test programs use): U-mode, paging
// off, RAM at 0x8000_0000. Used by the instruction tests to compare tsvisor
// with a real peer byte for byte.

import { CpuCore } from './cpu-core.js';
import { parseElf64 } from './loader.js';
import { RAM_BASE } from './layout.js';

const SYS_WRITE = 64n;
const SYS_EXIT = 93n;
const SYS_EXIT_GROUP = 94n;
const PRV_U = 0;
const PRV_M = 3;

export interface UserRunResult {
  /** Bytes written to fd 1 and 2, in order. */
  output: Uint8Array;
  exitCode: number;
  /** Set when the program did not exit by itself: an unhandled trap or the instruction limit. */
  error?: string;
  instructions: bigint;
  /** What the translator made (with jit on). */
  translations: number;
  regions: number;
}

export function runUserElf(wasm: Uint8Array, elfBytes: Uint8Array, opts: { ramSize?: number; maxInstructions?: number; jit?: boolean } = {}): UserRunResult {
  const ramSize = opts.ramSize ?? 16 * 1024 * 1024;
  const elf = parseElf64(elfBytes);
  if (!elf.ok) return { output: new Uint8Array(), exitCode: -1, error: elf.error, instructions: 0n, translations: 0, regions: 0 };
  const out: number[] = [];
  let done: { code: number; error?: string } | null = null;
  let core!: CpuCore;
  // The M-mode trap vector holds an `ecall`, so any trap out of U-mode lands in the host hook.
  const trapVector = RAM_BASE + ramSize - 16;
  core = new CpuCore(wasm, ramSize, {
    mmioRead: () => {
      core.signalMmioFault();
      return 0;
    },
    mmioWrite: () => core.signalMmioFault(),
    ecall: () => {
      if (core.priv === PRV_M) {
        const cause = core.readCsr(0x342);
        const epc = core.readCsr(0x341);
        const tval = core.readCsr(0x343);
        done = { code: -1, error: `unhandled trap: cause ${cause} at pc 0x${epc.toString(16)} (tval 0x${tval.toString(16)})` };
        core.exports.requestExit();
        return;
      }
      const nr = core.getX(17);
      if (nr === SYS_WRITE) {
        const fd = core.getX(10);
        const buf = Number(core.getX(11)) - RAM_BASE;
        const len = Number(core.getX(12));
        if ((fd === 1n || fd === 2n) && buf >= 0 && len >= 0 && buf + len <= ramSize) {
          for (let i = 0; i < len; i++) out.push(core.ram[buf + i]);
          core.setX(10, BigInt(len));
        } else {
          core.setX(10, -14n); // EFAULT
        }
      } else if (nr === SYS_EXIT || nr === SYS_EXIT_GROUP) {
        done = { code: Number(core.getX(10) & 0xffn) };
        core.exports.requestExit();
      } else {
        core.setX(10, -38n); // ENOSYS
      }
    },
  });
  for (const s of elf.segments) {
    const off = Number(s.paddr) - RAM_BASE;
    if (off < 0 || off + s.memsz > ramSize) {
      return { output: new Uint8Array(), exitCode: -1, error: 'segment outside RAM', instructions: 0n, translations: 0, regions: 0 };
    }
    core.ram.set(elfBytes.subarray(s.offset, s.offset + s.filesz), off);
  }
  core.reset(elf.entry);
  // ecall (0x00000073) at the trap vector
  new DataView(core.ram.buffer, core.ram.byteOffset).setUint32(trapVector - RAM_BASE, 0x73, true);
  core.writeCsr(0x305, BigInt(trapVector)); // mtvec
  core.writeCsr(0x306, 7n); // mcounteren
  core.writeCsr(0x106, 7n); // scounteren
  core.writeCsr(0x300, 1n << 13n); // mstatus.FS = initial
  core.exports.setEcallHookMask((1 << PRV_U) | (1 << PRV_M));
  core.grantAllMemory(); // PMP: U-mode needs an entry, as under firmware
  core.exports.setDeterministic(1);
  core.setJitEnabled(opts.jit ?? false);
  core.setX(2, BigInt(RAM_BASE + ramSize - 4096)); // sp
  core.priv = PRV_U;
  const max = opts.maxInstructions ?? 200_000_000;
  let ran = 0;
  while (!done && ran < max) {
    core.run(1_000_000);
    ran += 1_000_000;
  }
  const result: UserRunResult = {
    output: Uint8Array.from(out),
    exitCode: done ? (done as { code: number }).code : -1,
    instructions: core.instret,
    translations: core.jit.stats.translations,
    regions: core.jit.stats.regions,
  };
  if (!done) result.error = 'instruction limit reached';
  else if ((done as { error?: string }).error) result.error = (done as { error?: string }).error;
  return result;
}

// What a benchmark reports about the machine it ran on.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** The host CPU's model name. */
export function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^model name\s*:/.test(l));
    if (line) return line.split(':').slice(1).join(':').trim();
  } catch {
    // fall back to what node knows
  }
  return cpus()[0]?.model ?? 'unknown';
}

/** `qemu-system-riscv64 --version`, just the version. */
export function qemuVersion(): string {
  try {
    const out = execFileSync('qemu-system-riscv64', ['--version'], { encoding: 'utf8' });
    return out.split('\n')[0].replace(/^QEMU emulator version\s*/, '').trim();
  } catch {
    return 'not installed';
  }
}

/** The riscv64 C compiler: $RISCV64_CC or Debian's cross compiler. */
export function compiler(): string {
  return process.env.RISCV64_CC ?? 'riscv64-linux-gnu-gcc';
}

export function compilerVersion(): string {
  try {
    return execFileSync(compiler(), ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return 'unknown';
  }
}

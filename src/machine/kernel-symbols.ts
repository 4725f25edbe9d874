// The few kernel symbols the VMM needs (the panic entry point), read from a
// System.map and checked against the kernel image it claims to describe. No
// Node APIs: the map's text and the kernel's bytes come from the caller.

import { detectKernelFormat, parseElf64 } from './loader.js';

/** Symbols a panic breakpoint needs, as guest virtual addresses. */
export interface PanicSymbols {
  /** Entry of panic(): every kernel panic goes through it. */
  panic: bigint;
  /** Entry of vpanic(), in kernels that have it (newer than 6.12): panic() calls it, and so may others directly. */
  vpanic?: bigint;
}

export type SymbolsResult = { ok: true; symbols: PanicSymbols } | { ok: false; error: string };

const LINE = /^([0-9a-fA-F]{1,16})\s+([A-Za-z])\s+(\S+)\s*$/;
/** Largest System.map accepted (a distribution kernel's is about 5 MB). */
export const MAX_SYSTEM_MAP_BYTES = 64 * 1024 * 1024;

/** Addresses of the named symbols in System.map text (the first text or data definition of each). */
export function parseSystemMap(text: string, names: readonly string[]): Map<string, bigint> {
  const want = new Set(names);
  const found = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m || !want.has(m[3]) || found.has(m[3])) continue;
    found.set(m[3], BigInt(`0x${m[1]}`));
    if (found.size === want.size) break;
  }
  return found;
}

/** The bytes of the kernel file that hold guest virtual address `va`, or null when the file does not hold it. */
function fileOffsetOf(kernel: Uint8Array, va: bigint, start: bigint): number | null {
  if (detectKernelFormat(kernel) === 'elf') {
    const elf = parseElf64(kernel);
    if (!elf.ok) return null;
    for (const s of elf.segments) {
      if (va >= s.vaddr && va < s.vaddr + BigInt(s.filesz)) return s.offset + Number(va - s.vaddr);
    }
    return null;
  }
  // A RISC-V Image is the kernel from _start on, byte for byte.
  const off = va - start;
  return off >= 0n && off < BigInt(kernel.length) ? Number(off) : null;
}

/**
 * The panic symbols from `mapText`, if the map belongs to `kernel`: the
 * kernel's version banner must sit where the map puts `linux_banner`, so a
 * map from another build (or a relocated kernel) is refused, not trusted.
 */
export function panicSymbolsFor(mapText: string, kernel: Uint8Array): SymbolsResult {
  const syms = parseSystemMap(mapText, ['_start', 'panic', 'vpanic', 'linux_banner']);
  const panic = syms.get('panic');
  const banner = syms.get('linux_banner');
  const start = syms.get('_start');
  if (panic === undefined || banner === undefined || start === undefined) {
    return { ok: false, error: 'the System.map lacks panic, linux_banner or _start (a stub map? Debian ships the real one in the -dbg package)' };
  }
  const off = fileOffsetOf(kernel, banner, start);
  const expect = 'Linux version ';
  if (off === null || off + expect.length > kernel.length) {
    return { ok: false, error: 'the System.map does not fit the kernel (linux_banner outside the image)' };
  }
  for (let i = 0; i < expect.length; i++) {
    if (kernel[off + i] !== expect.charCodeAt(i)) {
      return { ok: false, error: 'the System.map does not belong to this kernel (no version banner at linux_banner)' };
    }
  }
  const vpanic = syms.get('vpanic');
  for (const a of vpanic === undefined ? [panic] : [panic, vpanic]) {
    if ((a & 1n) !== 0n || fileOffsetOf(kernel, a, start) === null) {
      return { ok: false, error: 'the System.map puts panic outside the kernel image' };
    }
  }
  return { ok: true, symbols: vpanic === undefined ? { panic } : { panic, vpanic } };
}

/** Where a kernel's System.map is looked for when none is named: next to the kernel, as Linux installs them. */
export function systemMapCandidates(kernelPath: string): string[] {
  const slash = kernelPath.lastIndexOf('/');
  const dir = slash >= 0 ? kernelPath.slice(0, slash + 1) : '';
  const base = kernelPath.slice(slash + 1);
  const out: string[] = [];
  const v = /^(?:vmlinu[xz]|Image|bzImage)-(.+)$/.exec(base);
  if (v) out.push(`${dir}System.map-${v[1]}`);
  out.push(`${dir}System.map`);
  return out;
}

/** The text symbols of a System.map, for naming guest pcs (`--stats` hot spots). */
export class TextSymbols {
  private readonly addrs: bigint[] = [];
  private readonly names: string[] = [];

  constructor(mapText: string) {
    const all: [bigint, string][] = [];
    for (const line of mapText.split('\n')) {
      const m = LINE.exec(line);
      if (m && 'tTwW'.includes(m[2])) all.push([BigInt(`0x${m[1]}`), m[3]]);
    }
    all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [a, n] of all) {
      this.addrs.push(a);
      this.names.push(n);
    }
  }

  get size(): number {
    return this.addrs.length;
  }

  /** The symbol at or below `pc` (within 1 MiB), or null (user code, firmware, modules). */
  name(pc: bigint): string | null {
    let lo = 0;
    let hi = this.addrs.length - 1;
    if (hi < 0 || pc < this.addrs[0]) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.addrs[mid] <= pc) lo = mid;
      else hi = mid - 1;
    }
    // Far past the last symbol is not the kernel's text (vmalloc, modules of a build without them in the map).
    return pc - this.addrs[lo] < 0x10_0000n ? this.names[lo] : null;
  }
}

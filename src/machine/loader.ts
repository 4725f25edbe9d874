// Pure parsers for kernel files and the placement of kernel, initrd and FDT in
// guest RAM. Malformed input is an error value with a message, never an exception.

import { KERNEL_TEXT_OFFSET } from './layout.js';

export type Result<T> = ({ ok: true } & T) | { ok: false; error: string };

// ---- RISC-V Linux `Image` header (Documentation/arch/riscv/boot-image-header.rst) ----
const IMAGE_HEADER_SIZE = 64;
const IMAGE_TEXT_OFFSET = 8; // u64
const IMAGE_SIZE = 16; // u64
const IMAGE_FLAGS = 24; // u64, bit 0: kernel endianness (0 = little)
const IMAGE_VERSION = 32; // u32, major << 16 | minor
const IMAGE_MAGIC = 48; // "RISCV\0\0\0" (deprecated)
const IMAGE_MAGIC2 = 56; // "RSC\x05"
const IMAGE_MAGIC_BYTES = [0x52, 0x49, 0x53, 0x43, 0x56, 0, 0, 0];
const IMAGE_MAGIC2_BYTES = [0x52, 0x53, 0x43, 0x05];

/** Largest size or offset accepted in a header: anything bigger cannot be a real guest kernel. */
const MAX_SIZE = 2 ** 40;

export interface LinuxImageInfo {
  textOffset: number;
  imageSize: number;
  flags: number;
  version: { major: number; minor: number };
  /** The file starts with "MZ": an EFI stub precedes the kernel (it still boots flat). */
  efiStub: boolean;
}

function bytesAt(buf: Uint8Array, off: number, expect: readonly number[]): boolean {
  if (off + expect.length > buf.length) return false;
  return expect.every((b, i) => buf[off + i] === b);
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export type ExecutableKind = 'image' | 'elf-riscv64' | 'elf-other' | 'unknown';

/**
 * Classify the first bytes of a file: RISC-V Linux Image, RISC-V ELF64, another
 * ELF, or neither. The one detector the CLI, the image builder and the loader share.
 */
export function classifyExecutable(head: Uint8Array): ExecutableKind {
  // A file that starts like an ELF is one, whatever lies at the Image magic's offsets.
  if (bytesAt(head, 0, ELF_MAGIC)) {
    // e_ident[EI_CLASS] = 2 (64-bit), e_ident[EI_DATA] = 1 (little-endian), e_machine at 0x12.
    if (head.length >= 0x14 && head[4] === 2 && head[5] === 1 && (head[0x12] | (head[0x13] << 8)) === EM_RISCV) {
      return 'elf-riscv64';
    }
    return 'elf-other';
  }
  if (bytesAt(head, IMAGE_MAGIC2, IMAGE_MAGIC2_BYTES) || bytesAt(head, IMAGE_MAGIC, IMAGE_MAGIC_BYTES)) return 'image';
  return 'unknown';
}

/** Parse the header of a RISC-V Linux `Image`. */
export function parseLinuxImage(buf: Uint8Array): Result<LinuxImageInfo> {
  if (buf.length < IMAGE_HEADER_SIZE) {
    return { ok: false, error: `kernel Image: file is ${buf.length} bytes, shorter than the ${IMAGE_HEADER_SIZE}-byte header` };
  }
  if (!bytesAt(buf, IMAGE_MAGIC2, IMAGE_MAGIC2_BYTES) && !bytesAt(buf, IMAGE_MAGIC, IMAGE_MAGIC_BYTES)) {
    return { ok: false, error: 'kernel Image: no RISC-V Image magic ("RSC\\x05" at 0x38 or "RISCV" at 0x30)' };
  }
  const dv = view(buf);
  const textOffset = dv.getBigUint64(IMAGE_TEXT_OFFSET, true);
  const imageSize = dv.getBigUint64(IMAGE_SIZE, true);
  const flags = dv.getBigUint64(IMAGE_FLAGS, true);
  const version = dv.getUint32(IMAGE_VERSION, true);
  if (flags & 1n) return { ok: false, error: 'kernel Image: big-endian kernels are not supported' };
  if (textOffset >= BigInt(MAX_SIZE) || Number(textOffset) % 4096 !== 0) {
    return { ok: false, error: `kernel Image: bad text_offset 0x${textOffset.toString(16)}` };
  }
  if (imageSize >= BigInt(MAX_SIZE)) {
    return { ok: false, error: `kernel Image: image_size 0x${imageSize.toString(16)} is too large` };
  }
  // Headers before v0.2 may leave image_size 0: the file is then all there is.
  const size = imageSize === 0n ? buf.length : Number(imageSize);
  return {
    ok: true,
    textOffset: Number(textOffset),
    imageSize: size,
    flags: Number(flags & 0xffff_ffffn),
    version: { major: version >>> 16, minor: version & 0xffff },
    efiStub: buf[0] === 0x4d && buf[1] === 0x5a,
  };
}

// ---- ELF64 ----
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const EV_CURRENT = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
export const EM_RISCV = 243;
const PT_LOAD = 1;
const ELF64_EHDR_SIZE = 64;
const ELF64_PHDR_SIZE = 56;
const PN_XNUM = 0xffff;

export interface ElfSegment {
  /** Physical (load) address. */
  paddr: bigint;
  vaddr: bigint;
  /** File offset of the segment's bytes. */
  offset: number;
  filesz: number;
  memsz: number;
  /** PF_X=1, PF_W=2, PF_R=4. */
  flags: number;
}

export interface ElfInfo {
  entry: bigint;
  /** PT_LOAD segments in file order. */
  segments: ElfSegment[];
}

const U64_MAX = (1n << 64n) - 1n;

/** Parse a little-endian RISC-V ELF64 executable: entry point and loadable segments. */
export function parseElf64(buf: Uint8Array): Result<ElfInfo> {
  if (!bytesAt(buf, 0, ELF_MAGIC)) return { ok: false, error: 'ELF: bad magic (not an ELF file)' };
  if (buf.length < ELF64_EHDR_SIZE) return { ok: false, error: `ELF: file is ${buf.length} bytes, shorter than an ELF64 header` };
  if (buf[4] !== ELFCLASS64) return { ok: false, error: `ELF: class ${buf[4]} is not ELFCLASS64 (a 64-bit file is needed)` };
  if (buf[5] !== ELFDATA2LSB) return { ok: false, error: `ELF: data encoding ${buf[5]} is not little-endian` };
  if (buf[6] !== EV_CURRENT) return { ok: false, error: `ELF: unknown ident version ${buf[6]}` };
  const dv = view(buf);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) return { ok: false, error: `ELF: machine ${machine} is not RISC-V (${EM_RISCV})` };
  if (type === ET_DYN) return { ok: false, error: 'ELF: position-independent (ET_DYN) files are not supported; link with -static -no-pie' };
  if (type !== ET_EXEC) return { ok: false, error: `ELF: type ${type} is not an executable (ET_EXEC)` };
  const entry = dv.getBigUint64(24, true);
  const phoff = dv.getBigUint64(32, true);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phnum === 0) return { ok: false, error: 'ELF: no program headers' };
  if (phnum === PN_XNUM) return { ok: false, error: 'ELF: extended program header numbering is not supported' };
  if (phentsize !== ELF64_PHDR_SIZE) return { ok: false, error: `ELF: program header size ${phentsize} is not ${ELF64_PHDR_SIZE}` };
  const phEnd = phoff + BigInt(phnum * phentsize);
  if (phEnd > BigInt(buf.length)) {
    return { ok: false, error: `ELF: program headers (offset 0x${phoff.toString(16)}, ${phnum} entries) run past the end of the file` };
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = Number(phoff) + i * phentsize;
    if (dv.getUint32(p, true) !== PT_LOAD) continue;
    const flags = dv.getUint32(p + 4, true);
    const offset = dv.getBigUint64(p + 8, true);
    const vaddr = dv.getBigUint64(p + 16, true);
    const paddr = dv.getBigUint64(p + 24, true);
    const filesz = dv.getBigUint64(p + 32, true);
    const memsz = dv.getBigUint64(p + 40, true);
    if (offset + filesz > BigInt(buf.length)) {
      return { ok: false, error: `ELF: segment ${i} (offset 0x${offset.toString(16)}, size 0x${filesz.toString(16)}) runs past the end of the file` };
    }
    if (filesz > memsz) return { ok: false, error: `ELF: segment ${i} has filesz 0x${filesz.toString(16)} > memsz 0x${memsz.toString(16)}` };
    if (memsz >= BigInt(MAX_SIZE)) return { ok: false, error: `ELF: segment ${i} memsz 0x${memsz.toString(16)} is too large` };
    if (paddr + memsz > U64_MAX + 1n || vaddr + memsz > U64_MAX + 1n) {
      return { ok: false, error: `ELF: segment ${i} wraps around the end of the address space` };
    }
    segments.push({ paddr, vaddr, offset: Number(offset), filesz: Number(filesz), memsz: Number(memsz), flags });
  }
  if (segments.length === 0) return { ok: false, error: 'ELF: no loadable (PT_LOAD) segments' };
  return { ok: true, entry, segments };
}

/** What kind of kernel file this is, by its magic numbers. */
export function detectKernelFormat(buf: Uint8Array): 'image' | 'elf' | null {
  const kind = classifyExecutable(buf);
  return kind === 'image' ? 'image' : kind === 'unknown' ? null : 'elf';
}

// ---- Boot layout ----

export const PAGE_SIZE = 4096;
/** Linux wants the FDT 8-byte aligned. */
export const FDT_ALIGN = 8;

export interface BootLayoutInput {
  ramBase: number;
  ramSize: number;
  /** Bytes of the kernel file copied into RAM. */
  kernelSize: number;
  /** Memory the kernel occupies once running (Image header image_size, BSS included); may be 0. */
  imageSize: number;
  /** 0 when there is no initrd. */
  initrdSize: number;
  fdtSize: number;
  /** Where the kernel goes. Default ramBase + 0x200000 (an Image's text_offset). */
  kernelAddr?: number;
}

export interface BootLayout {
  kernelAddr: number;
  /** End (exclusive) of the kernel's memory, max(kernelSize, imageSize) after kernelAddr. */
  kernelEnd: number;
  fdtAddr: number;
  initrd: { start: number; end: number } | null;
}

function alignDown(v: number, a: number): number {
  return v - (v % a);
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

/**
 * Place kernel, FDT and initrd: the kernel low in RAM, the FDT at the top (8-byte
 * aligned), the initrd page-aligned just below the FDT and above the kernel's
 * image_size (the kernel clears its BSS, and an initrd inside it would be lost).
 */
export function planBootLayout(input: BootLayoutInput): Result<BootLayout> {
  const { ramBase, ramSize, kernelSize, imageSize, initrdSize, fdtSize } = input;
  for (const [k, v] of Object.entries({ ramBase, ramSize, kernelSize, imageSize, initrdSize, fdtSize })) {
    if (!Number.isSafeInteger(v) || v < 0) return { ok: false, error: `boot layout: ${k} (${v}) is not a non-negative integer` };
  }
  const kernelAddr = input.kernelAddr ?? ramBase + KERNEL_TEXT_OFFSET;
  if (!Number.isSafeInteger(kernelAddr)) return { ok: false, error: `boot layout: bad kernel address ${kernelAddr}` };
  const ramEnd = ramBase + ramSize;
  if (!Number.isSafeInteger(ramEnd)) return { ok: false, error: 'boot layout: RAM end is out of range' };
  if (kernelSize === 0) return { ok: false, error: 'boot layout: the kernel is empty' };
  if (fdtSize === 0) return { ok: false, error: 'boot layout: the FDT is empty' };
  if (kernelAddr < ramBase) return { ok: false, error: `boot layout: kernel address 0x${kernelAddr.toString(16)} is below RAM` };
  const kernelEnd = kernelAddr + Math.max(kernelSize, imageSize);

  const fdtAddr = alignDown(ramEnd - fdtSize, FDT_ALIGN);
  if (fdtAddr < kernelEnd) {
    return { ok: false, error: `boot layout: kernel (${mib(kernelEnd - kernelAddr)} at +${mib(kernelAddr - ramBase)}) and FDT do not fit in ${mib(ramSize)} of RAM` };
  }
  let initrd: BootLayout['initrd'] = null;
  if (initrdSize > 0) {
    const start = alignDown(fdtAddr - initrdSize, PAGE_SIZE);
    if (start < alignUp(kernelEnd, PAGE_SIZE)) {
      return {
        ok: false,
        error: `boot layout: kernel (${mib(kernelEnd - kernelAddr)}), initrd (${mib(initrdSize)}) and FDT do not fit in ${mib(ramSize)} of RAM`,
      };
    }
    initrd = { start, end: start + initrdSize };
  }
  return { ok: true, kernelAddr, kernelEnd, fdtAddr, initrd };
}

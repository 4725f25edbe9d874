// Kernel file parsing (RISC-V Linux Image header, ELF64 program headers) and the
// boot layout planned from it, as the machine loads a --kernel or --bios file.
// Every accepted file must describe bytes inside itself, and every accepted
// layout must keep kernel, initrd and FDT inside RAM and apart.
import { detectKernelFormat, parseElf64, parseLinuxImage, planBootLayout } from '../../src/machine/loader.js';
import { check } from '../lib/expect.js';

const RAM_BASE = 0x8000_0000;

export function fuzz(data: Buffer): void {
  const fmt = detectKernelFormat(data);
  const img = parseLinuxImage(data);
  const elf = parseElf64(data);
  check(fmt !== null || (!img.ok && !elf.ok), 'a parser accepted a file detectKernelFormat does not recognise');
  if (elf.ok) {
    check(elf.segments.length > 0, 'ELF accepted without segments');
    for (const s of elf.segments) {
      check(s.offset >= 0 && s.filesz >= 0 && s.offset + s.filesz <= data.length, `ELF segment ${s.offset}+${s.filesz} outside the file`);
      check(s.filesz <= s.memsz, 'ELF segment filesz > memsz');
    }
  }
  // Layout for a range of RAM sizes and the sizes the file claims.
  const ramSize = data.length > 0 ? (data[data.length - 1] + 1) * 0x10_0000 : 0x100_0000;
  const initrdSize = data.length > 1 ? data[data.length - 2] * 0x1_0000 : 0;
  const kernelAddr = img.ok ? RAM_BASE + img.textOffset : undefined;
  const imageSize = img.ok ? Math.max(img.imageSize, data.length) : data.length;
  const fdtSize = data.length > 2 ? data[data.length - 3] * 64 + 64 : 4096;
  const layout = planBootLayout({ ramBase: RAM_BASE, ramSize, kernelSize: data.length, imageSize, initrdSize, fdtSize, kernelAddr });
  if (!layout.ok) return;
  const ramEnd = RAM_BASE + ramSize;
  check(layout.kernelAddr >= RAM_BASE && layout.kernelEnd <= ramEnd, 'kernel outside RAM');
  check(layout.fdtAddr >= layout.kernelEnd && layout.fdtAddr + fdtSize <= ramEnd && layout.fdtAddr % 8 === 0, 'FDT outside RAM, over the kernel or misaligned');
  if (initrdSize > 0) {
    check(layout.initrd !== null, 'initrd not placed');
    const i = layout.initrd!;
    check(i.start >= layout.kernelEnd && i.end <= layout.fdtAddr && i.end - i.start === initrdSize, 'initrd overlaps the kernel or the FDT');
  }
}

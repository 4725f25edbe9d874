import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { detectKernelFormat, parseElf64, parseLinuxImage, planBootLayout, EM_RISCV } from '../src/machine/loader.js';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** A minimal RISC-V Image: EFI-style "MZ" start, header fields, magics. */
function makeImage(opts: { textOffset?: bigint; imageSize?: bigint; flags?: bigint; magic?: 'both' | 'old' | 'new' | 'none'; length?: number } = {}): Uint8Array {
  const buf = new Uint8Array(opts.length ?? 4096);
  const dv = new DataView(buf.buffer);
  buf[0] = 0x4d;
  buf[1] = 0x5a;
  dv.setBigUint64(8, opts.textOffset ?? 0x200000n, true);
  dv.setBigUint64(16, opts.imageSize ?? 0x1800000n, true);
  dv.setBigUint64(24, opts.flags ?? 0n, true);
  dv.setUint32(32, 0x0002, true);
  const magic = opts.magic ?? 'both';
  if (magic === 'both' || magic === 'old') buf.set([0x52, 0x49, 0x53, 0x43, 0x56, 0, 0, 0], 0x30);
  if (magic === 'both' || magic === 'new') buf.set([0x52, 0x53, 0x43, 0x05], 0x38);
  return buf;
}

/** A hand-made ELF64 with the given program headers. */
function makeElf(segs: { type?: number; offset: bigint; paddr: bigint; filesz: bigint; memsz: bigint }[], tweak?: (dv: DataView) => void): Uint8Array {
  const phoff = 64;
  const dataOff = phoff + 56 * segs.length;
  const buf = new Uint8Array(dataOff + 256);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, 2, true);
  dv.setUint16(18, EM_RISCV, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, 0x80000000n, true);
  dv.setBigUint64(32, BigInt(phoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, segs.length, true);
  segs.forEach((s, i) => {
    const p = phoff + 56 * i;
    dv.setUint32(p, s.type ?? 1, true);
    dv.setUint32(p + 4, 5, true);
    dv.setBigUint64(p + 8, s.offset, true);
    dv.setBigUint64(p + 16, s.paddr, true);
    dv.setBigUint64(p + 24, s.paddr, true);
    dv.setBigUint64(p + 32, s.filesz, true);
    dv.setBigUint64(p + 40, s.memsz, true);
  });
  tweak?.(dv);
  return buf;
}

function expectError(r: { ok: boolean; error?: string }, re: RegExp): void {
  assert.equal(r.ok, false);
  assert.match((r as { error: string }).error, re);
}

test('parses a RISC-V Image header (with EFI stub)', () => {
  const r = parseLinuxImage(makeImage());
  assert.ok(r.ok);
  assert.equal(r.textOffset, 0x200000);
  assert.equal(r.imageSize, 0x1800000);
  assert.equal(r.efiStub, true);
  assert.deepEqual(r.version, { major: 0, minor: 2 });
  assert.ok(parseLinuxImage(makeImage({ magic: 'new' })).ok, 'magic2 alone is enough');
  assert.ok(parseLinuxImage(makeImage({ magic: 'old' })).ok, 'the deprecated magic alone is enough');
  assert.equal(detectKernelFormat(makeImage()), 'image');
});

test('rejects malformed Image headers with a message', () => {
  expectError(parseLinuxImage(new Uint8Array(10)), /shorter/);
  expectError(parseLinuxImage(makeImage({ length: 63 })), /shorter/);
  expectError(parseLinuxImage(makeImage({ magic: 'none' })), /magic/);
  expectError(parseLinuxImage(makeImage({ flags: 1n })), /big-endian/);
  expectError(parseLinuxImage(makeImage({ imageSize: 1n << 63n })), /too large/);
  expectError(parseLinuxImage(makeImage({ textOffset: 0x123n })), /text_offset/);
  expectError(parseLinuxImage(makeImage({ textOffset: 0xffff_ffff_ffff_f000n })), /text_offset/);
  assert.equal(detectKernelFormat(makeImage({ magic: 'none' })), null);
  assert.equal(detectKernelFormat(new Uint8Array(0)), null);
});

test('parses a hand-made ELF64 and skips non-LOAD segments', () => {
  const r = parseElf64(
    makeElf([
      { type: 6, offset: 64n, paddr: 0n, filesz: 8n, memsz: 8n },
      { offset: 0n, paddr: 0x80000000n, filesz: 100n, memsz: 0x2000n },
    ]),
  );
  assert.ok(r.ok);
  assert.equal(r.entry, 0x80000000n);
  assert.deepEqual(r.segments, [{ paddr: 0x80000000n, vaddr: 0x80000000n, offset: 0, filesz: 100, memsz: 0x2000, flags: 5 }]);
});

test('rejects malformed ELF files with a message', () => {
  const good = [{ offset: 0n, paddr: 0x80000000n, filesz: 64n, memsz: 64n }];
  expectError(parseElf64(new Uint8Array([1, 2, 3])), /magic/);
  expectError(parseElf64(makeElf(good).subarray(0, 40)), /shorter/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint8(4, 1))), /ELFCLASS64/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint8(5, 2))), /little-endian/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint16(18, 62, true))), /RISC-V/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint16(16, 3, true))), /ET_DYN/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint16(16, 1, true))), /executable/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint16(56, 0, true))), /no program headers/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint16(54, 32, true))), /header size/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setBigUint64(32, 0xffff_ffff_ffff_fff0n, true))), /past the end/);
  expectError(parseElf64(makeElf(good, (dv) => dv.setUint16(56, 200, true))), /past the end/);
  expectError(parseElf64(makeElf([{ offset: 0n, paddr: 0x80000000n, filesz: 100000n, memsz: 100000n }])), /past the end/);
  expectError(parseElf64(makeElf([{ offset: 0xffff_ffff_ffff_ffffn, paddr: 0n, filesz: 2n, memsz: 2n }])), /past the end/);
  expectError(parseElf64(makeElf([{ offset: 0n, paddr: 0x80000000n, filesz: 64n, memsz: 32n }])), /filesz/);
  expectError(parseElf64(makeElf([{ offset: 0n, paddr: 0n, filesz: 0n, memsz: 1n << 62n }])), /too large/);
  expectError(parseElf64(makeElf([{ offset: 0n, paddr: 0xffff_ffff_ffff_f000n, filesz: 0n, memsz: 0x2000n }])), /wraps/);
  expectError(parseElf64(makeElf([{ type: 4, offset: 0n, paddr: 0n, filesz: 1n, memsz: 1n }])), /PT_LOAD/);
});

test('parsers never throw on arbitrary or mutated input', () => {
  const seed = makeElf([{ offset: 0n, paddr: 0x80000000n, filesz: 64n, memsz: 64n }]);
  const image = makeImage({ length: 128 });
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat(seed.length),
      (random, edits, cut) => {
        for (const base of [seed, image]) {
          const b = base.slice(0, Math.min(cut + 64, base.length));
          for (const [i, v] of edits) if (i < b.length) b[i] = v;
          for (const input of [b, random]) {
            for (const r of [parseElf64(input), parseLinuxImage(input)]) {
              if (!r.ok) assert.equal(typeof r.error, 'string');
            }
            detectKernelFormat(input);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

const HAS_GCC = has('riscv64-linux-gnu-gcc');
test('parses a real ELF built by riscv64-linux-gnu-gcc, agreeing with readelf', { skip: !HAS_GCC && 'riscv64-linux-gnu-gcc not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-elf-'));
  try {
    const src = join(dir, 'start.S');
    const out = join(dir, 'prog.elf');
    writeFileSync(
      src,
      ['.section .text', '.globl _start', '_start:', '  li a0, 42', '  j _start', '.section .data', 'value: .dword 0x1122334455667788', '.section .bss', 'buf: .space 8192', ''].join('\n'),
    );
    const cc = spawnSync('riscv64-linux-gnu-gcc', ['-nostdlib', '-static', '-no-pie', '-Wl,-Ttext=0x80000000', '-Wl,--build-id=none', '-o', out, src], { encoding: 'utf8' });
    assert.equal(cc.status, 0, cc.stderr);
    const buf = new Uint8Array(readFileSync(out));
    assert.equal(detectKernelFormat(buf), 'elf');
    const r = parseElf64(buf);
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(r.entry, 0x80000000n);
    assert.ok(
      r.segments.some((s) => s.paddr <= 0x80000000n && 0x80000000n < s.paddr + BigInt(s.filesz)),
      'a segment holds the entry point',
    );
    assert.ok(r.segments.some((s) => s.memsz >= s.filesz + 8192), 'a segment carries the BSS');
    {
      assert.ok(has('riscv64-linux-gnu-readelf'), 'riscv64-linux-gnu-readelf not found (Debian: binutils-riscv64-linux-gnu)');
      const re = spawnSync('riscv64-linux-gnu-readelf', ['-lW', out], { encoding: 'utf8' });
      const loads = re.stdout
        .split('\n')
        .filter((l) => /^\s*LOAD\s/.test(l))
        .map((l) => l.trim().split(/\s+/));
      assert.equal(loads.length, r.segments.length);
      loads.forEach((f, i) => {
        const s = r.segments[i]!;
        assert.equal(Number(f[1]), s.offset);
        assert.equal(BigInt(f[2]!), s.vaddr);
        assert.equal(BigInt(f[3]!), s.paddr);
        assert.equal(Number(f[4]), s.filesz);
        assert.equal(Number(f[5]), s.memsz);
      });
      // The bytes at the entry point are the first instruction: li a0, 42 (addi a0, zero, 42).
      const text = r.segments.find((s) => s.paddr <= 0x80000000n && 0x80000000n < s.paddr + BigInt(s.filesz))!;
      const at = text.offset + Number(0x80000000n - text.paddr);
      const insn = new DataView(buf.buffer, buf.byteOffset).getUint32(at, true);
      assert.ok(insn === 0x02a00513 || (insn & 0xffff) === 0x02a9, `first instruction 0x${insn.toString(16)}`);
    }
    // Truncating the real file anywhere gives an error value, not an exception.
    for (let len = 0; len < buf.length; len += 37) {
      const t = parseElf64(buf.subarray(0, len));
      if (len < r.segments.at(-1)!.offset + r.segments.at(-1)!.filesz) assert.equal(t.ok, false, `truncated to ${len}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('boot layout: kernel at +2 MiB, FDT at the top, initrd just below it, page aligned', () => {
  const ramBase = 0x8000_0000;
  const ramSize = 256 << 20;
  const r = planBootLayout({ ramBase, ramSize, kernelSize: 20 << 20, imageSize: 24 << 20, initrdSize: 5_000_003, fdtSize: 4093 });
  assert.ok(r.ok);
  assert.equal(r.kernelAddr, ramBase + 0x200000);
  assert.equal(r.kernelEnd, ramBase + 0x200000 + (24 << 20), 'image_size (BSS) counts');
  assert.equal(r.fdtAddr % 8, 0);
  assert.ok(r.fdtAddr + 4093 <= ramBase + ramSize);
  assert.ok(ramBase + ramSize - (r.fdtAddr + 4093) < 8);
  assert.ok(r.initrd);
  assert.equal(r.initrd.start % 4096, 0);
  assert.equal(r.initrd.end - r.initrd.start, 5_000_003);
  assert.ok(r.initrd.end <= r.fdtAddr);
  assert.ok(r.initrd.start >= r.kernelEnd);

  const none = planBootLayout({ ramBase, ramSize, kernelSize: 1 << 20, imageSize: 0, initrdSize: 0, fdtSize: 100 });
  assert.ok(none.ok);
  assert.equal(none.initrd, null);
  assert.equal(none.kernelEnd, ramBase + 0x200000 + (1 << 20));

  const elf = planBootLayout({ ramBase, ramSize, kernelAddr: ramBase, kernelSize: 4096, imageSize: 0, initrdSize: 0, fdtSize: 100 });
  assert.ok(elf.ok);
  assert.equal(elf.kernelAddr, ramBase);
});

test('boot layout: errors when things do not fit or inputs are bad', () => {
  const ramBase = 0x8000_0000;
  expectError(planBootLayout({ ramBase, ramSize: 16 << 20, kernelSize: 1 << 20, imageSize: 20 << 20, initrdSize: 0, fdtSize: 4096 }), /do not fit/);
  expectError(planBootLayout({ ramBase, ramSize: 64 << 20, kernelSize: 1 << 20, imageSize: 30 << 20, initrdSize: 40 << 20, fdtSize: 4096 }), /initrd.*do not fit/);
  expectError(planBootLayout({ ramBase, ramSize: 64 << 20, kernelSize: 0, imageSize: 0, initrdSize: 0, fdtSize: 4096 }), /empty/);
  expectError(planBootLayout({ ramBase, ramSize: -1, kernelSize: 1, imageSize: 0, initrdSize: 0, fdtSize: 4096 }), /ramSize/);
  expectError(planBootLayout({ ramBase, ramSize: 64 << 20, kernelSize: 1.5, imageSize: 0, initrdSize: 0, fdtSize: 4096 }), /kernelSize/);
  expectError(planBootLayout({ ramBase, ramSize: 64 << 20, kernelAddr: 0, kernelSize: 1, imageSize: 0, initrdSize: 0, fdtSize: 4096 }), /below RAM/);
});

// The device tree of this machine, shaped like QEMU's `virt` board, generated from
// the constants in layout.ts. It describes only what the VM actually emulates.

import { Fdt, type FdtNode } from './fdt.js';
import { TEST_PASS, TEST_RESET } from '../devices/sifive-test.js';
import {
  CLINT_BASE,
  CLINT_SIZE,
  IRQ_M_EXT,
  IRQ_M_SOFT,
  IRQ_M_TIMER,
  IRQ_S_EXT,
  PLIC_BASE,
  PLIC_NDEV,
  PLIC_SIZE,
  RAM_BASE,
  TEST_BASE,
  TEST_SIZE,
  TIMEBASE_HZ,
  UART0_BASE,
  UART0_CLOCK_HZ,
  UART0_IRQ,
  UART0_SIZE,
  VMGENID_BASE,
  VMGENID_IRQ,
  VMGENID_SIZE,
  VIRTIO_MMIO_SIZE,
  VIRTIO_MMIO_SLOTS,
  virtioMmioBase,
  virtioMmioIrq,
} from './layout.js';

/** The default ISA: what the CPU core implements. Canonical order matters to Linux. */
export const DEFAULT_ISA = 'rv64imafdc_zicntr_zicsr_zifencei_zihpm_sstc';
export const DEFAULT_MMU_TYPE = 'riscv,sv48';
export const DEFAULT_MODEL = 'riscv-virtio,qemu';

/** Memory-mapped platform devices that may appear in the tree (virtio slots are listed separately). */
export type VirtDevice = 'test' | 'clint' | 'plic' | 'uart' | 'vmgenid';
export const ALL_VIRT_DEVICES: readonly VirtDevice[] = ['test', 'clint', 'plic', 'uart', 'vmgenid'];

export interface VirtFdtOptions {
  /** Size of guest RAM in bytes. */
  ramSize: number;
  ramBase?: number;
  /** Kernel command line (/chosen/bootargs); omitted when undefined. */
  bootargs?: string;
  /** Guest physical start and end (exclusive) of the initrd, if one is loaded. */
  initrd?: { start: number; end: number };
  /** ISA string; it is checked and rewritten in canonical order. Default DEFAULT_ISA. */
  isa?: string;
  /** `mmu-type` of each cpu: riscv,sv39 | riscv,sv48 | riscv,sv57 | riscv,none. Default riscv,sv48. */
  mmuType?: string;
  /** Number of harts. Default 1. */
  harts?: number;
  /** virtio-mmio slots (0..7) that have a device behind them. */
  virtioSlots?: readonly number[];
  /** Platform devices that are emulated. Default: all of them. */
  devices?: readonly VirtDevice[];
  model?: string;
  timebaseHz?: number;
  /** Free space added at the end of the blob for firmware that edits it in place. */
  padding?: number;
  /**
   * Seed for the kernel's random number generator (/chosen/rng-seed), as QEMU's
   * virt board gives one. Without it the kernel's CRNG starts empty, and until
   * enough entropy arrives every random number it takes (one per system call,
   * for the kernel stack offset) costs a full entropy-pool extraction.
   */
  rngSeed?: Uint8Array;
}

export type VirtFdtResult = { ok: true; dtb: Uint8Array; isa: ParsedIsa } | { ok: false; error: string };

export interface ParsedIsa {
  /** Canonical riscv,isa string. */
  isa: string;
  /** riscv,isa-base, e.g. "rv64i". */
  base: string;
  /** riscv,isa-extensions: single letters then multi-letter extensions, canonical order. */
  extensions: string[];
}

/** Canonical order of single-letter extensions. */
const LETTER_ORDER = 'iemafdqlcbkjtpvh';

/** Multi-letter extensions: Z (by category letter, then name), then S, then X (by name). */
function multiKey(ext: string): [number, number, string] {
  const kind = ext[0] === 'z' ? 0 : ext[0] === 's' ? 1 : 2;
  const cat = kind === 0 ? LETTER_ORDER.indexOf(ext[1]!) : 0;
  return [kind, cat < 0 ? LETTER_ORDER.length : cat, ext];
}

/** Parse an RV64 ISA string and rewrite it in canonical order. */
export function parseIsa(input: string): { ok: true; value: ParsedIsa } | { ok: false; error: string } {
  const s = input.trim().toLowerCase();
  const m = /^rv64([a-z]*)((?:_[a-z0-9]+)*)$/.exec(s);
  if (!m) return { ok: false, error: `ISA string "${input}": expected rv64<letters>[_<extension>...]` };
  const multi = new Set(m[2]!.split('_').filter((x) => x !== ''));
  const singles = new Set<string>();
  for (const c of m[1]!) {
    if (c === 'g') {
      for (const x of 'imafd') singles.add(x);
      multi.add('zicsr');
      multi.add('zifencei');
    } else if (!LETTER_ORDER.includes(c) || c === 'e') {
      return { ok: false, error: `ISA string "${input}": unknown single-letter extension "${c}"` };
    } else {
      singles.add(c);
    }
  }
  if (!singles.has('i')) return { ok: false, error: `ISA string "${input}": the base integer ISA (i or g) is missing` };
  for (const e of multi) {
    if (!/^[zsx][a-z][a-z0-9]*$/.test(e) || e.length < 3) {
      return { ok: false, error: `ISA string "${input}": bad multi-letter extension "${e}"` };
    }
  }
  const single = [...singles].sort((a, b) => LETTER_ORDER.indexOf(a) - LETTER_ORDER.indexOf(b));
  const multis = [...multi].sort((a, b) => {
    const ka = multiKey(a);
    const kb = multiKey(b);
    return ka[0] - kb[0] || ka[1] - kb[1] || (ka[2] < kb[2] ? -1 : ka[2] > kb[2] ? 1 : 0);
  });
  const isa = 'rv64' + single.join('') + multis.map((e) => '_' + e).join('');
  return { ok: true, value: { isa, base: 'rv64i', extensions: [...single, ...multis] } };
}

const MMU_TYPES = ['riscv,sv39', 'riscv,sv48', 'riscv,sv57', 'riscv,none'];

function hex(n: number): string {
  return n.toString(16);
}

/** Build the DTB. Bad options come back as an error value. */
export function buildVirtFdt(opts: VirtFdtOptions): VirtFdtResult {
  const ramBase = opts.ramBase ?? RAM_BASE;
  const ramSize = opts.ramSize;
  const harts = opts.harts ?? 1;
  const devices = new Set(opts.devices ?? ALL_VIRT_DEVICES);
  const slots = [...new Set(opts.virtioSlots ?? [])].sort((a, b) => b - a); // QEMU lists them high to low
  const mmuType = opts.mmuType ?? DEFAULT_MMU_TYPE;
  const timebase = opts.timebaseHz ?? TIMEBASE_HZ;

  if (!Number.isSafeInteger(ramBase) || ramBase < 0) return { ok: false, error: `bad RAM base ${ramBase}` };
  if (!Number.isSafeInteger(ramSize) || ramSize <= 0 || !Number.isSafeInteger(ramBase + ramSize)) {
    return { ok: false, error: `bad RAM size ${ramSize}` };
  }
  if (!Number.isInteger(harts) || harts < 1 || harts > 64) return { ok: false, error: `bad hart count ${harts} (1..64)` };
  for (const s of slots) {
    if (!Number.isInteger(s) || s < 0 || s >= VIRTIO_MMIO_SLOTS) {
      return { ok: false, error: `bad virtio-mmio slot ${s} (0..${VIRTIO_MMIO_SLOTS - 1})` };
    }
  }
  for (const d of devices) {
    if (!ALL_VIRT_DEVICES.includes(d)) return { ok: false, error: `unknown device "${String(d)}"` };
  }
  if (!devices.has('plic') && (devices.has('uart') || devices.has('vmgenid') || slots.length > 0)) {
    return { ok: false, error: 'the UART, VM generation ID and virtio-mmio devices need the PLIC for their interrupts' };
  }
  if (!MMU_TYPES.includes(mmuType)) return { ok: false, error: `bad mmu-type "${mmuType}" (one of ${MMU_TYPES.join(', ')})` };
  if (!Number.isInteger(timebase) || timebase <= 0 || timebase > 0xffff_ffff) {
    return { ok: false, error: `bad timebase frequency ${timebase}` };
  }
  if (opts.bootargs !== undefined && opts.bootargs.includes('\0')) {
    return { ok: false, error: 'the kernel command line contains a NUL character' };
  }
  const model = opts.model ?? DEFAULT_MODEL;
  if (model.includes('\0')) return { ok: false, error: 'the model string contains a NUL character' };
  if (opts.initrd) {
    const { start, end } = opts.initrd;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      return { ok: false, error: `bad initrd range ${start}..${end}` };
    }
  }
  const padding = opts.padding ?? 0;
  if (!Number.isInteger(padding) || padding < 0 || padding > 0x100_0000) return { ok: false, error: `bad padding ${padding}` };
  const parsed = parseIsa(opts.isa ?? DEFAULT_ISA);
  if (!parsed.ok) return parsed;
  const isa = parsed.value;

  const fdt = new Fdt();
  const root = fdt.root;
  root.u32('#address-cells', 2).u32('#size-cells', 2).string('compatible', 'riscv-virtio').string('model', model);

  // /chosen
  const chosen = root.addChild('chosen');
  if (opts.bootargs !== undefined) chosen.string('bootargs', opts.bootargs);
  if (devices.has('uart')) chosen.string('stdout-path', `/soc/serial@${hex(UART0_BASE)}`);
  if (opts.initrd) {
    chosen.u64('linux,initrd-start', opts.initrd.start);
    chosen.u64('linux,initrd-end', opts.initrd.end);
  }
  if (opts.rngSeed && opts.rngSeed.length > 0) chosen.bytes('rng-seed', opts.rngSeed);

  // /memory
  root
    .addChild(`memory@${hex(ramBase)}`)
    .string('device_type', 'memory')
    .u64s('reg', [ramBase, ramSize]);

  // /cpus
  const cpus = root.addChild('cpus');
  cpus.u32('#address-cells', 1).u32('#size-cells', 0).u32('timebase-frequency', timebase);
  const intcs: FdtNode[] = [];
  const cpuNodes: number[] = [];
  for (let h = 0; h < harts; h++) {
    const cpu = cpus.addChild(`cpu@${hex(h)}`);
    cpu
      .string('device_type', 'cpu')
      .u32('reg', h)
      .string('status', 'okay')
      .string('compatible', 'riscv')
      .string('riscv,isa', isa.isa)
      .string('riscv,isa-base', isa.base)
      .strings('riscv,isa-extensions', isa.extensions)
      .string('mmu-type', mmuType);
    // Several harts: phandles for the cpu-map below, as QEMU's virt board has them.
    if (harts > 1) cpuNodes.push(fdt.phandle(cpu));
    const intc = cpu.addChild('interrupt-controller');
    intc
      .u32('#interrupt-cells', 1)
      .u32('#address-cells', 0)
      .empty('interrupt-controller')
      .string('compatible', 'riscv,cpu-intc');
    fdt.phandle(intc);
    intcs.push(intc);
  }
  if (harts > 1) {
    const cluster = cpus.addChild('cpu-map').addChild('cluster0');
    cpuNodes.forEach((ph, h) => cluster.addChild(`core${h}`).u32('cpu', ph));
  }
  const perHart = (cells: number[]): number[] => intcs.flatMap((n) => cells.flatMap((c) => [n.phandleValue, c]));

  // /soc
  const soc = root.addChild('soc');
  soc.u32('#address-cells', 2).u32('#size-cells', 2).string('compatible', 'simple-bus').empty('ranges');

  let plicPhandle = 0;
  if (devices.has('plic')) {
    const plic = soc.addChild(`plic@${hex(PLIC_BASE)}`);
    plic
      .u32('#interrupt-cells', 1)
      .u32('#address-cells', 0)
      .strings('compatible', ['sifive,plic-1.0.0', 'riscv,plic0'])
      .empty('interrupt-controller')
      .u32s('interrupts-extended', perHart([IRQ_M_EXT, IRQ_S_EXT]))
      .u64s('reg', [PLIC_BASE, PLIC_SIZE])
      .u32('riscv,ndev', PLIC_NDEV);
    plicPhandle = fdt.phandle(plic);
  }
  if (devices.has('clint')) {
    soc
      .addChild(`clint@${hex(CLINT_BASE)}`)
      .strings('compatible', ['sifive,clint0', 'riscv,clint0'])
      .u64s('reg', [CLINT_BASE, CLINT_SIZE])
      .u32s('interrupts-extended', perHart([IRQ_M_SOFT, IRQ_M_TIMER]));
  }
  for (const s of slots) {
    soc
      .addChild(`virtio_mmio@${hex(virtioMmioBase(s))}`)
      .string('compatible', 'virtio,mmio')
      .u64s('reg', [virtioMmioBase(s), VIRTIO_MMIO_SIZE])
      .u32('interrupt-parent', plicPhandle)
      .u32('interrupts', virtioMmioIrq(s));
  }
  if (devices.has('test')) {
    const test = soc.addChild(`test@${hex(TEST_BASE)}`);
    test.strings('compatible', ['sifive,test1', 'sifive,test0', 'syscon']).u64s('reg', [TEST_BASE, TEST_SIZE]);
    const testPhandle = fdt.phandle(test);
    root
      .addChild('poweroff')
      .string('compatible', 'syscon-poweroff')
      .u32('regmap', testPhandle)
      .u32('offset', 0)
      .u32('value', TEST_PASS);
    root
      .addChild('reboot')
      .string('compatible', 'syscon-reboot')
      .u32('regmap', testPhandle)
      .u32('offset', 0)
      .u32('value', TEST_RESET);
  }
  if (devices.has('uart')) {
    soc
      .addChild(`serial@${hex(UART0_BASE)}`)
      .string('compatible', 'ns16550a')
      .u64s('reg', [UART0_BASE, UART0_SIZE])
      .u32('clock-frequency', UART0_CLOCK_HZ)
      .u32('interrupt-parent', plicPhandle)
      .u32('interrupts', UART0_IRQ);
  }

  if (devices.has('vmgenid')) {
    // Linux's DT binding: the 16-byte ID at the start of reg, one interrupt for "it changed".
    soc
      .addChild(`vmgenid@${hex(VMGENID_BASE)}`)
      .string('compatible', 'microsoft,vmgenid')
      .u64s('reg', [VMGENID_BASE, VMGENID_SIZE])
      .u32('interrupt-parent', plicPhandle)
      .u32('interrupts', VMGENID_IRQ);
  }

  return { ok: true, dtb: fdt.serialize({ padding }), isa };
}

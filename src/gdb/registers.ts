// The register set tsvisor offers GDB for one RV64GC hart, numbered as GDB
// numbers RISC-V registers (x0..x31 = 0..31, pc = 32, f0..f31 = 33..64, a CSR
// = 65 + its number, the privilege level = 65 + 4096), and the target
// description XML that names them.

export const REG_PC = 32;
export const REG_F0 = 33;
export const REG_CSR0 = 65;
export const REG_PRIV = REG_CSR0 + 4096;
/** Registers in a `g` packet: x0..x31 and pc (the rest are read one by one with `p`). */
export const G_PACKET_REGS = 33;

const X_NAMES = [
  'zero', 'ra', 'sp', 'gp', 'tp', 't0', 't1', 't2', 'fp', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5',
  'a6', 'a7', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11', 't3', 't4', 't5', 't6',
];
const F_NAMES = [
  'ft0', 'ft1', 'ft2', 'ft3', 'ft4', 'ft5', 'ft6', 'ft7', 'fs0', 'fs1', 'fa0', 'fa1', 'fa2', 'fa3', 'fa4', 'fa5',
  'fa6', 'fa7', 'fs2', 'fs3', 'fs4', 'fs5', 'fs6', 'fs7', 'fs8', 'fs9', 'fs10', 'fs11', 'ft8', 'ft9', 'ft10', 'ft11',
];
/** fflags, frm and fcsr: CSRs 1..3, described with the FPU. */
export const FP_CSRS: readonly [string, number][] = [['fflags', 1], ['frm', 2], ['fcsr', 3]];

/** The CSRs shown by name (supervisor, machine, counters). */
export const CSRS: readonly [string, number][] = [
  ['sstatus', 0x100], ['sie', 0x104], ['stvec', 0x105], ['scounteren', 0x106], ['senvcfg', 0x10a],
  ['sscratch', 0x140], ['sepc', 0x141], ['scause', 0x142], ['stval', 0x143], ['sip', 0x144],
  ['stimecmp', 0x14d], ['satp', 0x180],
  ['mstatus', 0x300], ['misa', 0x301], ['medeleg', 0x302], ['mideleg', 0x303], ['mie', 0x304], ['mtvec', 0x305],
  ['mcounteren', 0x306], ['menvcfg', 0x30a], ['mscratch', 0x340], ['mepc', 0x341], ['mcause', 0x342],
  ['mtval', 0x343], ['mip', 0x344], ['mvendorid', 0xf11], ['marchid', 0xf12], ['mimpid', 0xf13], ['mhartid', 0xf14],
  ['cycle', 0xc00], ['time', 0xc01], ['instret', 0xc02],
];

/** What a GDB register number names, or null for one tsvisor does not offer. */
export type RegisterRef =
  | { kind: 'x'; index: number }
  | { kind: 'pc' }
  | { kind: 'f'; index: number }
  | { kind: 'csr'; csr: number }
  | { kind: 'priv' };

const CSR_NUMBERS = new Set([...CSRS, ...FP_CSRS].map(([, n]) => n));

export function registerRef(n: number): RegisterRef | null {
  if (!Number.isInteger(n) || n < 0) return null;
  if (n < 32) return { kind: 'x', index: n };
  if (n === REG_PC) return { kind: 'pc' };
  if (n < REG_CSR0) return { kind: 'f', index: n - REG_F0 };
  if (n === REG_PRIV) return { kind: 'priv' };
  const csr = n - REG_CSR0;
  return CSR_NUMBERS.has(csr) ? { kind: 'csr', csr } : null;
}

/** `priv` is 8 bits wide, fflags/frm/fcsr 32 (as GDB's own RISC-V description has them), all others 64. */
export function registerBytes(r: RegisterRef): number {
  if (r.kind === 'priv') return 1;
  return r.kind === 'csr' && r.csr <= 3 ? 4 : 8;
}

const reg = (name: string, regnum: number, type: string, group?: string, bits = 64) =>
  `<reg name="${name}" bitsize="${bits}" regnum="${regnum}" type="${type}"${group ? ` group="${group}"` : ''}/>`;

/** The target description for `qXfer:features:read:target.xml`. */
export function targetXml(): string {
  const cpu = [...X_NAMES.map((n, i) => reg(n, i, i === 1 ? 'code_ptr' : i === 2 || i === 8 ? 'data_ptr' : 'int')), reg('pc', REG_PC, 'code_ptr')];
  const fpu = [
    ...F_NAMES.map((n, i) => reg(n, REG_F0 + i, 'ieee_double', 'float')),
    ...FP_CSRS.map(([n, c]) => reg(n, REG_CSR0 + c, 'int', 'float', 32)),
  ];
  const csr = CSRS.map(([n, c]) => reg(n, REG_CSR0 + c, 'int', 'system'));
  return [
    '<?xml version="1.0"?>',
    '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
    '<target version="1.0">',
    '<architecture>riscv:rv64</architecture>',
    '<feature name="org.gnu.gdb.riscv.cpu">', ...cpu, '</feature>',
    '<feature name="org.gnu.gdb.riscv.fpu">', ...fpu, '</feature>',
    '<feature name="org.gnu.gdb.riscv.csr">', ...csr, '</feature>',
    '<feature name="org.gnu.gdb.riscv.virtual">', reg('priv', REG_PRIV, 'int', 'general', 8), '</feature>',
    '</target>',
  ].join('\n');
}

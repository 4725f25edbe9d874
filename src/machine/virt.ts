// The `virt` machine: 1 to 8 harts (run round-robin, harts.ts), RAM, CLINT (in the core), PLIC, UART, test
// device, the device tree and the boot path (direct S-mode boot with the SBI in
// the VMM, or real M-mode firmware with --bios). No Node APIs: file contents
// arrive as bytes and output leaves through the MachineHost callbacks.

import { CpuCore, EXIT_BUDGET, EXIT_WFI, EXIT_HOST, EXIT_BREAKPOINT, type CoreSource } from './cpu-core.js';
import { MmioBus } from './bus.js';
import { Sbi, type SbiHost } from './sbi.js';
import { HartSet, MAX_HARTS } from './harts.js';
import { buildVirtFdt } from './virt-fdt.js';
import { detectKernelFormat, parseElf64, parseLinuxImage, planBootLayout } from './loader.js';
import {
  RAM_BASE, TEST_BASE, TEST_SIZE, PLIC_BASE, PLIC_SIZE, UART0_BASE, UART0_SIZE, UART0_IRQ, KERNEL_TEXT_OFFSET,
  IRQ_M_EXT, IRQ_S_EXT, TIMEBASE_HZ, VMGENID_BASE, VMGENID_SIZE, VMGENID_IRQ,
} from './layout.js';
import { Uart16550 } from '../devices/uart16550.js';
import { Plic } from '../devices/plic.js';
import { SifiveTest } from '../devices/sifive-test.js';
import { VmGenId, VMGENID_BYTES } from '../devices/vmgenid.js';
import { attachVirtio, type VirtioConfig, type VirtioSet } from './virtio-slots.js';
import type { NicLimits } from '../devices/virtio/net.js';
import type { RateLimits } from '../devices/rate-limiter.js';
import type { BlkStats } from '../devices/virtio/blk/device.js';
import type { BalloonStats } from '../devices/virtio/balloon.js';
import type { Button } from '../devices/virtio/input/device.js';
import { saveCpu, restoreCpu, CPU_FIELDS, type CpuState } from './cpu-persist.js';
import { type HartSetState } from './harts.js';
import { isRecord, isIntArray } from '../devices/device.js';

export { EXIT_BUDGET, EXIT_WFI, EXIT_HOST, EXIT_BREAKPOINT };

/** The core breakpoint slots the panic watch uses (the others are free for a debugger). */
const PANIC_SLOTS = [0, 1];
/** Bytes of /chosen/rng-seed, as many as QEMU's virt board gives. */
const RNG_SEED_BYTES = 32;

export interface MachineConfig extends VirtioConfig {
  ramSize: number;
  /** The kernel; may be omitted when `bios` is given (the firmware then runs alone, like QEMU's -bios without -kernel). */
  kernel?: Uint8Array;
  initrd?: Uint8Array;
  /** M-mode firmware (raw binary loaded at RAM base, or ELF), e.g. OpenSBI fw_dynamic.bin. */
  bios?: Uint8Array;
  bootargs: string;
  deterministic: boolean;
  /** Translate hot guest code to wasm (default on). */
  jit?: boolean;
  /** Number of harts, 1..8 (default 1). */
  harts?: number;
}

export interface MachineHost {
  consoleOut(bytes: Uint8Array): void;
  /** The guest powered off or failed (code = exit status) or asked for a reset. */
  power(kind: 'poweroff' | 'reset' | 'fail', code: number): void;
  /** Entropy for virtio-rng (without it there is no virtio-rng). */
  randomBytes?(n: number): Uint8Array;
  /** Device diagnostics (e.g. why a virtio device needs a reset). */
  log?(message: string): void;
  /** The translation cache was dropped (see Jit). */
  jitFlushed?(): void;
  /**
   * Host monotonic clock in ms on the same origin as the ticks given to setTime()
   * (realtime runs): the device clock of rate limiters. Deterministic runs use guest time.
   */
  nowMs?(): number;
}

/** Device statistics for monitoring (--stats and the worker's deviceStats command). */
export interface MachineDeviceStats {
  disks: (BlkStats & { index: number; name: string })[];
  balloon: BalloonStats | null;
}

/**
 * The machine's state as a tree of plain, per-device states (JSON-serialisable).
 * Guest RAM is not in it: it travels beside it, page by page (see src/vm/snapshot.ts).
 * Each part is validated by its own device on restore.
 */
export interface MachineState {
  cpu: CpuState;
  /** Machines with several harts: harts 1.. (cpu is hart 0) and the scheduler's state. */
  smp?: { cpus: CpuState[]; harts: HartSetState };
  plic: unknown;
  uart: unknown;
  test: unknown;
  /** Absent in snapshots taken before the device existed. */
  vmgenid?: unknown;
  /** One entry per occupied virtio-mmio slot, in slot order of VirtioSet.slots. */
  virtio: { slot: number; name: string; state: unknown }[];
  /** Console input accepted by the VMM but not yet by the UART or hvc0. */
  pendingInput: number[];
  halted: boolean;
}

const TICKS_PER_MS = TIMEBASE_HZ / 1000;
/** Guest instructions per timer tick in deterministic mode (mirrors DET_INSNS_PER_TICK in src/cpu/hart.ts). */
const DET_INSNS_PER_TICK = 10;
const NO_DEADLINE = 0xffffffffffffffffn;
/** Realtime runs: within this many ms of a device deadline, slices are at most NEAR_DEADLINE_SLICE instructions. */
const NEAR_DEADLINE_MS = 50;
const NEAR_DEADLINE_SLICE = 100_000;

export type Result<T> = ({ ok: true } & T) | { ok: false; error: string };

const PRV_S = 1;
const PRV_M = 3;
const FW_DYNAMIC_MAGIC = 0x4942534fn; // "OSBI"
const FW_DYNAMIC_VERSION = 2n;

export class VirtMachine {
  readonly core: CpuCore;
  readonly bus = new MmioBus();
  readonly uart: Uart16550;
  readonly plic: Plic;
  readonly sbi: Sbi;
  /** What SBI calls reach of the machine (console, reset); harts on threads of their own call it from the device thread. */
  readonly sbiHost: SbiHost;
  readonly harts: HartSet;
  private readonly test: SifiveTest;
  private readonly vmgenid: VmGenId;
  /** Console bytes not yet accepted by the UART's receive FIFO. */
  private pendingInput: number[] = [];
  private outBuf: number[] = [];
  private halted = false;
  /** Guest virtual addresses of the kernel's panic entries while they are watched (watchPanic). */
  private panicVas: bigint[] = [];
  /** The guest kernel entered panic(): seen through the breakpoint, which no guest program can fake. */
  panicked = false;
  /** virtio-mmio devices (see virtio-slots.ts). */
  private virtio: VirtioSet = { slots: [], transports: [], console: null, nics: [], disks: [], balloon: null, input: null };
  /** Console input goes to hvc0 instead of the UART (the command line's last console= is hvc0). */
  private hvcInput = false;

  private constructor(wasm: CoreSource, private config: MachineConfig, private readonly host: MachineHost) {
    this.core = new CpuCore(wasm, config.ramSize, {
      mmioRead: (a, s) => this.bus.read(a, s),
      mmioWrite: (a, s, v) => this.bus.write(a, s, v),
      ecall: () => this.sbi.handle(),
      jitFlushed: host.jitFlushed,
      // The guest's time reads see the host clock move within a slice (same origin as setTime).
      hostTime: !config.deterministic && host.nowMs ? () => Math.floor(host.nowMs!() * TICKS_PER_MS) : undefined,
    });
    this.bus.onUnmapped = () => this.core.signalMmioFault();
    const harts = config.harts ?? 1;
    this.harts = new HartSet(this.core, harts);
    // With one hart nothing can observe the host's store buffer: fences stay free.
    this.core.setOrderingFences(harts > 1);
    // Context 2h is hart h's M-mode line, 2h + 1 its S-mode line.
    this.plic = new Plic({
      harts,
      onContextChange: (ctx, level) => this.harts.setIrqLine(ctx >> 1, (ctx & 1) === 0 ? IRQ_M_EXT : IRQ_S_EXT, level),
    });
    this.uart = new Uart16550({
      onOutput: (b) => this.outBuf.push(b),
      irq: (level) => this.plic.setIrq(UART0_IRQ, level),
      onRxSpace: () => this.feedInput(),
    });
    const test = new SifiveTest({ onPower: (kind, code) => this.powerEvent(kind, code) });
    this.test = test;
    this.bus.map(TEST_BASE, TEST_SIZE, test);
    // A booted VM starts a generation of its own; without host entropy it stays zero.
    this.vmgenid = new VmGenId((level) => this.plic.setIrq(VMGENID_IRQ, level), host.randomBytes?.(VMGENID_BYTES));
    this.bus.map(VMGENID_BASE, VMGENID_SIZE, this.vmgenid);
    this.bus.map(PLIC_BASE, PLIC_SIZE, this.plic);
    this.bus.map(UART0_BASE, UART0_SIZE, this.uart);
    this.sbiHost = {
      consoleWrite: (bytes) => {
        for (const b of bytes) this.outBuf.push(b);
      },
      consoleReadByte: () => (this.pendingInput.length ? this.pendingInput.shift()! : -1),
      systemReset: (kind, code) => this.powerEvent(kind === 'poweroff' ? (code ? 'fail' : 'poweroff') : 'reset', code),
    };
    this.sbi = new Sbi(this.core, this.harts, this.sbiHost);
  }

  /** The machine with its devices, before a boot or a restore (shared by create() and restore()). */
  private static build(wasm: CoreSource, config: MachineConfig, host: MachineHost): Result<{ machine: VirtMachine }> {
    const harts = config.harts ?? 1;
    if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) return { ok: false, error: `bad hart count ${harts} (1..${MAX_HARTS})` };
    const m = new VirtMachine(wasm, config, host);
    const v = attachVirtio(config, {
      mem: { ram: m.core.ram, base: RAM_BASE, noteWrite: (off, len) => m.core.noteRamWrite(off, len) },
      bus: m.bus,
      plic: m.plic,
      consoleOut: (bytes) => {
        for (const b of bytes) m.outBuf.push(b);
      },
      randomBytes: host.randomBytes,
      log: host.log,
      clock: () => m.deviceClockMs(),
    });
    if (!v.ok) return v;
    m.virtio = v.set;
    const consoles = [...config.bootargs.matchAll(/(?:^|\s)console=([^\s,]+)/g)].map((x) => x[1]);
    m.hvcInput = v.set.console !== null && consoles.at(-1) === 'hvc0';
    return { ok: true, machine: m };
  }

  /** Build the machine and load the boot images; errors are values with a message for the user. */
  static create(wasm: CoreSource, config: MachineConfig, host: MachineHost): Result<{ machine: VirtMachine }> {
    const built = VirtMachine.build(wasm, config, host);
    if (!built.ok) return built;
    const m = built.machine;
    const r = m.boot();
    // The images are in guest RAM now: keeping them (a Debian kernel is about 30 MiB)
    // for the machine's life would only cost host memory.
    m.config = { ...m.config, kernel: undefined, initrd: undefined, bios: undefined };
    if (!r.ok) return r;
    return { ok: true, machine: m };
  }

  /**
   * Build the machine for a restore: the same devices as create() but no boot.
   * `loadRam` fills guest RAM (the caller maps or reads the snapshot's memory)
   * before the device states, which may re-walk chains held in guest RAM.
   */
  static restore(
    wasm: CoreSource,
    config: MachineConfig,
    host: MachineHost,
    state: unknown,
    loadRam: (core: CpuCore) => Result<object>,
  ): Result<{ machine: VirtMachine }> {
    const built = VirtMachine.build(wasm, config, host);
    if (!built.ok) return built;
    const m = built.machine;
    m.config = { ...m.config, kernel: undefined, initrd: undefined, bios: undefined };
    // reset() sizes the core for this RAM and fills its tables; the saved state replaces the rest.
    m.core.reset(BigInt(RAM_BASE));
    const loaded = loadRam(m.core);
    if (!loaded.ok) return loaded;
    // A function gives the state once RAM is in (live migration receives it last).
    const r = m.restoreState(typeof state === 'function' ? (state as () => unknown)() : state);
    if (!r.ok) return r;
    return { ok: true, machine: m };
  }

  /**
   * The whole machine's state (RAM aside). Call between slices: no instruction
   * is half done then, console output is flushed and every device has served
   * what the guest queued, except chains a device holds on purpose (a request
   * waiting for rate-limit tokens), which are saved by head and replayed.
   */
  saveState(): MachineState {
    this.flushOutput();
    return {
      cpu: saveCpu(this.core, 0),
      ...(this.harts.count > 1 ? {
        smp: { cpus: Array.from({ length: this.harts.count - 1 }, (_, i) => saveCpu(this.core, i + 1)), harts: this.harts.save() },
      } : {}),
      plic: this.plic.save(),
      uart: this.uart.save(),
      test: this.test.save(),
      vmgenid: this.vmgenid.save(),
      virtio: this.virtio.transports.map((t, i) => ({ slot: this.virtio.slots[i], name: t.device.name, state: t.save() })),
      pendingInput: this.pendingInput.slice(),
      halted: this.halted,
    };
  }

  /** Restore saved state into this freshly built machine (see restore()); errors are values. */
  private restoreState(state: unknown): Result<object> {
    if (!isRecord(state)) return { ok: false, error: 'machine state is not an object' };
    const st = state;
    if (!Array.isArray(st.virtio) || st.virtio.length !== this.virtio.transports.length) {
      return { ok: false, error: `the snapshot has ${Array.isArray(st.virtio) ? st.virtio.length : 'no'} virtio devices, the configuration ${this.virtio.transports.length}` };
    }
    if (!isIntArray(st.pendingInput, -1, 0, 0xff)) return { ok: false, error: 'pendingInput must be bytes' };
    if (st.pendingInput.length > 1 << 20) return { ok: false, error: 'pendingInput is larger than 1 MiB' };
    if (typeof st.halted !== 'boolean') return { ok: false, error: 'halted must be a boolean' };
    const smp = st.smp;
    const count = this.harts.count;
    if (count > 1) {
      if (!isRecord(smp) || !Array.isArray(smp.cpus) || smp.cpus.length !== count - 1) {
        return { ok: false, error: `the snapshot does not have the ${count} harts this VM is configured with` };
      }
      const bad = HartSet.problem(smp.harts, count);
      if (bad) return { ok: false, error: bad };
      // Harts 1.. go through the live core into their slots, then hart 0 stays live.
      for (let h = count - 1; h >= 1; h--) {
        const r = restoreCpu(this.core, smp.cpus[h - 1]);
        if (!r.ok) return { ok: false, error: `hart ${h}: ${r.error}` };
        this.core.exports.hartSaveTo(h);
      }
    } else if (smp !== undefined) {
      return { ok: false, error: 'the snapshot has several harts; this VM is configured with one (--smp)' };
    }
    const cpu = restoreCpu(this.core, st.cpu);
    if (!cpu.ok) return cpu;
    if (count > 1) this.harts.restore((smp as { harts: HartSetState }).harts);
    if (this.core.exports.cpuStateGet(CPU_FIELDS.indexOf('deterministic')) !== (this.config.deterministic ? 1n : 0n)) {
      return { ok: false, error: 'the snapshot was taken with a different --deterministic setting' };
    }
    this.core.setJitEnabled(this.config.jit !== false);
    // Devices before the PLIC: they re-drive their lines into a PLIC whose own saved
    // state (levels, pending, claimed) then replaces what that did; the PLIC drives the core.
    for (const [i, e] of (st.virtio as unknown[]).entries()) {
      if (!isRecord(e) || e.slot !== this.virtio.slots[i]) return { ok: false, error: `virtio device ${i}: not in slot ${this.virtio.slots[i]} as configured` };
      const r = this.virtio.transports[i].restore(e.state);
      if (!r.ok) return r;
    }
    if (st.vmgenid !== undefined) {
      const r = this.vmgenid.restore(st.vmgenid);
      if (!r.ok) return r;
    }
    for (const [name, dev] of [['uart', this.uart], ['test', this.test], ['plic', this.plic]] as const) {
      const r = dev.restore(st[name]);
      if (!r.ok) return r;
    }
    this.pendingInput = st.pendingInput.slice();
    this.halted = st.halted;
    return { ok: true };
  }

  /** The VM generation ID the guest sees (16 bytes). */
  get generationId(): Uint8Array {
    return this.vmgenid.value;
  }

  /**
   * This VM may now be one of several copies (a clone of a snapshot): give it a
   * new generation ID, which makes the guest reseed its RNG.
   */
  newGeneration(id: Uint8Array): void {
    this.vmgenid.regenerate(id);
  }

  /** Blip every NIC's link (down, then up once the guest has looked) so the guest renews its addresses. */
  bounceLinks(): void {
    for (const n of this.virtio.nics) n.bounceLink();
  }

  /** After a live migration: each NIC's guest announces itself (VIRTIO_NET_F_GUEST_ANNOUNCE, else a link blip). */
  announceNics(): void {
    for (const n of this.virtio.nics) n.announce();
  }

  private powerEvent(kind: 'poweroff' | 'reset' | 'fail', code: number): void {
    this.halted = true;
    this.flushOutput();
    this.host.power(kind, code);
    this.core.exports.requestExit();
  }

  get isHalted(): boolean {
    return this.halted;
  }

  private copyToRam(addr: number, bytes: Uint8Array): void {
    this.core.ram.set(bytes, addr - RAM_BASE);
  }

  private boot(): Result<object> {
    const { ramSize, initrd, bios, bootargs } = this.config;
    if (!this.config.kernel) {
      if (!bios) return { ok: false, error: 'no kernel and no firmware to boot' };
      return this.bootFirmwareOnly(bios);
    }
    const kernel = this.config.kernel;
    const fmt = detectKernelFormat(kernel);
    if (!fmt) return { ok: false, error: 'kernel: not a RISC-V Linux Image or ELF64 executable' };
    let entry: number;
    let kernelAddr = RAM_BASE + KERNEL_TEXT_OFFSET;
    let imageSize = kernel.length;
    let kernelSpan = kernel.length;
    let elfSegments: { paddr: number; data: Uint8Array; memsz: number }[] = [];
    if (fmt === 'image') {
      const info = parseLinuxImage(kernel);
      if (!info.ok) return info;
      kernelAddr = RAM_BASE + info.textOffset;
      imageSize = Math.max(info.imageSize, kernel.length);
      entry = kernelAddr;
    } else {
      const elf = parseElf64(kernel);
      if (!elf.ok) return elf;
      let lo = Infinity;
      let hi = 0;
      for (const s of elf.segments) {
        const pa = Number(s.paddr);
        if (pa < RAM_BASE || pa + s.memsz > RAM_BASE + ramSize) {
          return { ok: false, error: `kernel: ELF segment at 0x${pa.toString(16)} is outside guest RAM` };
        }
        lo = Math.min(lo, pa);
        hi = Math.max(hi, pa + s.memsz);
        elfSegments.push({ paddr: pa, data: kernel.subarray(s.offset, s.offset + s.filesz), memsz: s.memsz });
      }
      if (!elfSegments.length) return { ok: false, error: 'kernel: ELF has no loadable segments' };
      kernelAddr = lo;
      kernelSpan = hi - lo;
      imageSize = kernelSpan;
      entry = Number(elf.entry);
    }
    const rngSeed = this.host.randomBytes?.(RNG_SEED_BYTES);
    const fdtFor = (initrdRange?: { start: number; end: number }) =>
      buildVirtFdt({ ramSize, bootargs, initrd: initrdRange, padding: bios ? 4096 : 0, virtioSlots: this.virtio.slots, rngSeed, harts: this.harts.count });
    const probe = fdtFor(initrd ? { start: RAM_BASE, end: RAM_BASE + initrd.length } : undefined);
    if (!probe.ok) return probe;
    const layout = planBootLayout({
      ramBase: RAM_BASE,
      ramSize,
      kernelSize: kernelSpan,
      imageSize,
      initrdSize: initrd?.length ?? 0,
      // Firmware grows the blob in place (OpenSBI adds nodes): leave it room above.
      fdtSize: probe.dtb.length + (bios ? 0x10000 : 64),
      kernelAddr,
    });
    if (!layout.ok) return layout;
    const fdt = fdtFor(layout.initrd ?? undefined);
    if (!fdt.ok) return fdt;
    if (fmt === 'image') this.copyToRam(kernelAddr, kernel);
    else for (const s of elfSegments) this.copyToRam(s.paddr, s.data);
    if (initrd && layout.initrd) this.copyToRam(layout.initrd.start, initrd);
    this.copyToRam(layout.fdtAddr, fdt.dtb);

    const core = this.core;
    core.exports.setDeterministic(this.config.deterministic ? 1 : 0);
    core.setJitEnabled(this.config.jit !== false);
    if (bios) {
      // Firmware at the RAM base in M-mode; it finds the kernel through fw_dynamic_info.
      if (kernelAddr < RAM_BASE + 0x200000) {
        return { ok: false, error: 'kernel: with --bios the kernel must load at least 2 MiB above the RAM base' };
      }
      let fwEntry = RAM_BASE;
      if (detectKernelFormat(bios) === 'elf') {
        const elf = parseElf64(bios);
        if (!elf.ok) return { ok: false, error: `bios: ${elf.error}` };
        for (const s of elf.segments) {
          const pa = Number(s.paddr);
          if (pa < RAM_BASE || pa + s.memsz > kernelAddr) return { ok: false, error: 'bios: ELF segment overlaps the kernel or lies outside RAM' };
          this.copyToRam(pa, bios.subarray(s.offset, s.offset + s.filesz));
        }
        fwEntry = Number(elf.entry);
      } else {
        if (bios.length > kernelAddr - RAM_BASE) return { ok: false, error: 'bios: firmware is larger than the space below the kernel' };
        this.copyToRam(RAM_BASE, bios);
      }
      const infoAddr = Math.floor((layout.fdtAddr - 64) / 64) * 64;
      const dv = new DataView(core.ram.buffer, core.ram.byteOffset + (infoAddr - RAM_BASE), 48);
      dv.setBigUint64(0, FW_DYNAMIC_MAGIC, true);
      dv.setBigUint64(8, FW_DYNAMIC_VERSION, true);
      dv.setBigUint64(16, BigInt(entry), true); // next_addr
      dv.setBigUint64(24, 1n, true); // next_mode: S
      dv.setBigUint64(32, 0n, true); // options
      dv.setBigUint64(40, 0n, true); // boot_hart
      core.reset(BigInt(fwEntry));
      core.setX(10, 0n);
      core.setX(11, BigInt(layout.fdtAddr));
      core.setX(12, BigInt(infoAddr));
      core.priv = PRV_M;
      this.harts.startAllAt(BigInt(fwEntry), BigInt(layout.fdtAddr), BigInt(infoAddr));
    } else {
      core.reset(BigInt(entry));
      // Play M-mode: delegate every trap and interrupt to S, expose counters, enable Sstc.
      core.writeCsr(0x302, 0xb1ffn); // medeleg: all but ecall from S/M
      core.writeCsr(0x303, 0x222n); // mideleg: SSI, STI, SEI
      core.writeCsr(0x306, 0x7n); // mcounteren: cycle, time, instret
      core.writeCsr(0x106, 0x7n); // scounteren: user space reads time (the vDSO's rdtime), as OpenSBI leaves it
      core.writeCsr(0x30a, 1n << 63n); // menvcfg.STCE
      core.exports.setEcallHookMask(1 << PRV_S);
      core.grantAllMemory(); // PMP: what firmware leaves for S-mode
      core.setX(10, 0n);
      core.setX(11, BigInt(layout.fdtAddr));
      core.priv = PRV_S;
      this.harts.initSecondaries();
    }
    return { ok: true };
  }

  /** Bare firmware/test program in M-mode at its entry, with the FDT at the top of RAM (a1). */
  private bootFirmwareOnly(bios: Uint8Array): Result<object> {
    const { ramSize, bootargs } = this.config;
    let entry = RAM_BASE;
    if (detectKernelFormat(bios) === 'elf') {
      const elf = parseElf64(bios);
      if (!elf.ok) return { ok: false, error: `bios: ${elf.error}` };
      for (const s of elf.segments) {
        const pa = Number(s.paddr);
        if (pa < RAM_BASE || pa + s.memsz > RAM_BASE + ramSize) return { ok: false, error: 'bios: ELF segment outside RAM' };
        this.copyToRam(pa, bios.subarray(s.offset, s.offset + s.filesz));
      }
      entry = Number(elf.entry);
    } else {
      if (bios.length > ramSize / 2) return { ok: false, error: 'bios: firmware is larger than half of RAM' };
      this.copyToRam(RAM_BASE, bios);
    }
    const fdt = buildVirtFdt({ ramSize, bootargs, virtioSlots: this.virtio.slots, harts: this.harts.count });
    if (!fdt.ok) return fdt;
    const fdtAddr = Math.floor((RAM_BASE + ramSize - fdt.dtb.length - 4096) / 4096) * 4096;
    this.copyToRam(fdtAddr, fdt.dtb);
    this.core.exports.setDeterministic(this.config.deterministic ? 1 : 0);
    this.core.reset(BigInt(entry));
    this.core.setJitEnabled(this.config.jit !== false);
    this.core.setX(10, 0n);
    this.core.setX(11, BigInt(fdtAddr));
    this.harts.startAllAt(BigInt(entry), BigInt(fdtAddr), 0n);
    return { ok: true };
  }

  /**
   * Watch the kernel's panic() entry (and vpanic() where it exists), guest
   * virtual addresses from the kernel's System.map: when the hart is about
   * to execute one, runSlice
   * returns EXIT_BREAKPOINT and `panicked` becomes true. Only the kernel can
   * execute there, so guest programs cannot fake a panic (docs/security.md).
   */
  watchPanic(...vas: bigint[]): void {
    if (vas.length > PANIC_SLOTS.length) throw new RangeError(`at most ${PANIC_SLOTS.length} panic entry points`);
    vas.forEach((va, i) => this.core.setBreakpoint(PANIC_SLOTS[i], va));
    this.panicVas = vas;
  }

  /** Host time in timebase ticks for this slice (ignored in deterministic mode). */
  setTime(ticks: bigint): void {
    this.core.exports.setTime(ticks);
  }

  /** Run up to `budget` instructions; returns the core's exit reason. */
  runSlice(budget: number): number {
    this.feedInput();
    this.pollDevices();
    if (this.config.deterministic) {
      // Stop at the next device deadline so a throttled disk resumes at an exact
      // instruction count (the same on every run), not at the end of the slice.
      const d = this.deviceDeadlineTicks();
      if (d !== NO_DEADLINE) {
        const now = this.core.exports.getTime();
        const insns = d > now ? Number(d - now) * DET_INSNS_PER_TICK + DET_INSNS_PER_TICK : DET_INSNS_PER_TICK;
        budget = Math.max(1, Math.min(budget, insns));
      }
    } else {
      // Host time: the instruction count to a deadline is unknown, so shorten slices
      // while one is close; a held request then resumes within about a millisecond.
      const d = this.deviceDeadlineTicks();
      if (d !== NO_DEADLINE && Number(d) / TICKS_PER_MS - this.deviceClockMs() < NEAR_DEADLINE_MS) {
        budget = Math.min(budget, NEAR_DEADLINE_SLICE);
      }
    }
    let r = this.harts.run(budget, () => this.halted);
    // Frames the guest queued during the slice leave now, as one batch (VirtioNet deferTransmit).
    // Their completion interrupt must not be slept through: a hart it wakes makes this no idle exit.
    if (this.flushNicTransmits() && r === EXIT_WFI && this.anyHartWakeable()) r = EXIT_BUDGET;
    if (r === EXIT_BREAKPOINT && this.panicVas.includes(BigInt.asUintN(64, this.core.pc))) {
      // Seen once is enough: drop the breakpoints so the kernel prints its panic message at full speed.
      this.panicked = true;
      this.panicVas.forEach((_, i) => this.core.setBreakpoint(PANIC_SLOTS[i], null));
      this.panicVas = [];
    }
    this.pollDevices();
    this.flushOutput();
    return r;
  }

  /**
   * Harts on threads of their own (phase 2): the device thread's share of a
   * slice, without running a hart: console input into the UART, timed device
   * work, console output out.
   */
  serviceDevices(): void {
    this.feedInput();
    this.pollDevices();
    this.flushOutput();
  }

  /** Host ms until the earliest device deadline (Infinity: none). */
  msToDeviceDeadline(): number {
    const d = this.deviceDeadlineTicks();
    if (d === NO_DEADLINE) return Infinity;
    return Math.max(0, Number(d) / TICKS_PER_MS - this.deviceClockMs());
  }

  // ---- Timed device work (rate limiters, balloon statistics) ----

  /** The device clock in ms: guest time in deterministic runs, the host's monotonic clock otherwise. */
  deviceClockMs(): number {
    if (!this.config.deterministic && this.host.nowMs) return this.host.nowMs();
    return Number(this.core.exports.getTime()) / TICKS_PER_MS;
  }

  /** Earliest device deadline in timer ticks, or all ones. */
  private deviceDeadlineTicks(): bigint {
    let best = Infinity;
    for (const t of this.virtio.transports) {
      const d = t.nextDeadline();
      if (d !== null && d < best) best = d;
    }
    return best === Infinity ? NO_DEADLINE : BigInt(Math.max(0, Math.ceil(best * TICKS_PER_MS)));
  }

  /** Let devices whose deadline has come do their work (interrupts they raise end a WFI). */
  pollDevices(): void {
    for (const t of this.virtio.transports) {
      const d = t.nextDeadline();
      // Read the clock after the deadline: a device may answer "now" (a host clock moves on
      // between the two calls). The tolerance covers deadlines rounded up to whole ticks.
      if (d !== null && d <= this.deviceClockMs() + 1e-6) t.poll();
    }
  }

  /** Change the rate limits of disk `index` (RangeError for bad limits). */
  setNicLimits(index: number, limits: NicLimits): void {
    const n = this.virtio.nics[index];
    if (!n) throw new RangeError(`no NIC ${index} (the VM has ${this.virtio.nics.length})`);
    n.setLimits(limits);
  }

  setDiskLimits(index: number, limits: RateLimits): void {
    const d = this.virtio.disks[index];
    if (!d) throw new RangeError(`no disk ${index} (the VM has ${this.virtio.disks.length})`);
    d.setLimits(limits);
  }

  /** Set the balloon's target in MiB; false without a balloon. */
  setBalloonTarget(mib: number): boolean {
    const b = this.virtio.balloon;
    if (!b) return false;
    b.setTargetPages(Math.round((mib * 1024 * 1024) / 4096));
    return true;
  }

  /**
   * Press a button of the machine (virtio-input): 'power' asks the guest to
   * shut down, 'restart' to reboot. What happens is up to the guest. Returns
   * why the press cannot reach the guest, or null when it was queued for a
   * driver that is up.
   */
  pressButton(button: Button): string | null {
    const input = this.virtio.input;
    if (!input) return 'the VM has no buttons (virtio-input; every virtio-mmio slot is taken by disks and NICs)';
    if (!input.active) return 'the guest has no driver for its buttons (virtio-input) running';
    if (!input.press(button)) return 'the guest is not taking button events';
    return null;
  }

  /** The host terminal's size for the guest's console (hvc0); false without a virtio-console. RangeError for bad sizes. */
  setConsoleSize(cols: number, rows: number): boolean {
    const c = this.virtio.console;
    if (!c) return false;
    c.setSize(cols, rows);
    return true;
  }

  /** Ask the guest for fresh balloon statistics (they arrive a moment later). */
  refreshBalloonStats(): void {
    this.virtio.balloon?.requestStats();
  }

  deviceStats(): MachineDeviceStats {
    return {
      disks: this.virtio.disks.map((d, index) => ({ index, name: d.name, ...d.stats() })),
      balloon: this.virtio.balloon?.stats() ?? null,
    };
  }

  /**
   * Exits to devices for --stats: MMIO accesses per device, and per virtio
   * device the notifications, interrupts and (NICs) segmentation-offload frames.
   */
  mmioStats(): { access: { name: string; reads: number; writes: number }[]; virtio: { name: string; notifies: number; interrupts: number; suppressed: number; extra: string }[] } {
    return {
      access: this.bus.accessCounts(),
      virtio: this.virtio.transports
        .filter((t) => t.counters.notifies + t.counters.interrupts > 0)
        .map((t) => ({ name: t.device.name, ...t.counters, extra: t.device.statsText?.() ?? '' })),
    };
  }

  /** Queue console input for the UART (delivered as its FIFO drains). */
  pushConsoleInput(bytes: Uint8Array): void {
    for (const b of bytes) this.pendingInput.push(b);
    this.feedInput();
  }

  /** Deliver frames waiting for the guest's NICs (and send queued ones); true if any buffer was used (an interrupt may be due). */
  pollNics(): boolean {
    let used = this.flushNicTransmits();
    for (const n of this.virtio.nics) used += n.poll();
    return used > 0;
  }

  /** Serve the NICs' transmit queues; returns the buffers given back. */
  private flushNicTransmits(): number {
    let used = 0;
    for (const n of this.virtio.nics) used += n.flushTransmit();
    return used;
  }

  private anyHartWakeable(): boolean {
    for (let h = 0; h < this.harts.count; h++) if (this.core.exports.hartWakeable(h)) return true;
    return false;
  }

  get nicCount(): number {
    return this.virtio.nics.length;
  }

  hasPendingInput(): boolean {
    return this.pendingInput.length > 0;
  }

  private feedInput(): void {
    if (!this.pendingInput.length) return;
    if (this.hvcInput && this.virtio.console) {
      const n = this.virtio.console.pushInput(this.pendingInput);
      if (n > 0) this.pendingInput.splice(0, n);
      return;
    }
    // Deterministic runs hold input until the guest opens the port (enables the receive
    // interrupt): that moment depends only on the guest, so input given up front lands
    // at the same instruction on every run and nothing is lost to an early FIFO reset.
    if (this.config.deterministic && !this.uart.receiveInterruptEnabled) return;
    const n = this.uart.pushInput(this.pendingInput);
    if (n > 0) this.pendingInput.splice(0, n);
  }

  private flushOutput(): void {
    if (!this.outBuf.length) return;
    this.host.consoleOut(Uint8Array.from(this.outBuf));
    this.outBuf = [];
  }

  /** Deterministic idle: advance guest time to the next timer (or device) deadline. */
  skipToNextDeadline(): boolean {
    const ex = this.core.exports;
    const deadline = this.nextTimerDeadline();
    if (deadline === 0xffffffffffffffffn) return false;
    const now = ex.getTime();
    if (deadline > now) ex.addTimeSkew(deadline - now);
    return true;
  }

  /** Ticks from now to the next timer deadline, or null when no timer is armed. */
  idleTicksUntilDeadline(): bigint | null {
    const ex = this.core.exports;
    const deadline = this.nextTimerDeadline();
    if (deadline === 0xffffffffffffffffn) return null;
    const now = ex.getTime();
    return deadline > now ? deadline - now : 0n;
  }

  /** Earliest timer deadline in ticks, device deadlines included (all ones: none). */
  nextTimerDeadline(): bigint {
    const t = this.harts.nextDeadline();
    const d = this.deviceDeadlineTicks();
    return d < t ? d : t;
  }
}

// The guest machine's memory map, interrupt numbers and clocks (QEMU `virt` compatible),
// plus the layout of the CPU core's wasm linear memory (generated from src/cpu/layout.ts).
// Devices, the bus, the FDT builder and the boot loader all read these constants,
// so the device tree can never disagree with what is emulated.

import { PLIC_NUM_SOURCES, PLIC_PRIORITY_BITS } from '../devices/plic-sizes.js';

// The PLIC's own sizes live with the device; the map re-exports them.
export { PLIC_NUM_SOURCES, PLIC_PRIORITY_BITS };

// ---- Memory map (guest physical addresses) ----

/** SiFive test / syscon device: poweroff, reboot, fail-with-code. */
export const TEST_BASE = 0x0010_0000;
export const TEST_SIZE = 0x1000;

/** VM generation ID ("microsoft,vmgenid"): one read-only page; nothing else is mapped here. */
export const VMGENID_BASE = 0x0010_2000;
export const VMGENID_SIZE = 0x1000;
export const VMGENID_IRQ = 11;

/** Core-local interruptor: msip, mtimecmp, mtime. */
export const CLINT_BASE = 0x0200_0000;
export const CLINT_SIZE = 0x1_0000;

/** Platform-level interrupt controller. */
export const PLIC_BASE = 0x0c00_0000;
export const PLIC_SIZE = 0x60_0000;

/** The ns16550a console UART. */
export const UART0_BASE = 0x1000_0000;
export const UART0_SIZE = 0x100;
export const UART0_IRQ = 10;
/** Input clock of the UART as QEMU advertises it (1.8432 MHz * 2). */
export const UART0_CLOCK_HZ = 3_686_400;

/** virtio-mmio transport slots: slot n lives at VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_STRIDE. */
export const VIRTIO_MMIO_BASE = 0x1000_1000;
export const VIRTIO_MMIO_STRIDE = 0x1000;
export const VIRTIO_MMIO_SIZE = 0x1000;
export const VIRTIO_MMIO_SLOTS = 8;
/** PLIC source of slot 0; slot n uses VIRTIO_MMIO_IRQ_BASE + n (1..8). */
export const VIRTIO_MMIO_IRQ_BASE = 1;

/** Guest physical base address of a virtio-mmio slot (0..VIRTIO_MMIO_SLOTS-1). */
export function virtioMmioBase(slot: number): number {
  return VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_STRIDE;
}

/** PLIC source number of a virtio-mmio slot. */
export function virtioMmioIrq(slot: number): number {
  return VIRTIO_MMIO_IRQ_BASE + slot;
}

/** Start of guest RAM. */
export const RAM_BASE = 0x8000_0000;
/** Where a flat kernel `Image` goes by default (its header's text_offset, 2 MiB on RV64). */
export const KERNEL_TEXT_OFFSET = 0x20_0000;

// ---- Clocks ----

/** Frequency of mtime / the `time` CSR, as on QEMU virt. */
export const TIMEBASE_HZ = 10_000_000;

// ---- Interrupts ----


/** Value of the FDT's `riscv,ndev`: the highest valid source number. */
export const PLIC_NDEV = PLIC_NUM_SOURCES - 1;

/** Local interrupt numbers (mip/mie bit positions, also the cpu-intc cells in the FDT). */
export const IRQ_S_SOFT = 1;
export const IRQ_M_SOFT = 3;
export const IRQ_S_TIMER = 5;
export const IRQ_M_TIMER = 7;
export const IRQ_S_EXT = 9;
export const IRQ_M_EXT = 11;

// ---- The wasm core's linear memory (hart state, TLB, translator tables, guest RAM) ----

// Generated from src/cpu/layout.ts, the one source the core is compiled with.
export * from './layout.generated.js';

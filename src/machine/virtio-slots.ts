// Puts the machine's virtio devices into the virtio-mmio slots: disks take the
// highest slots first (the device tree lists slots high to low, as QEMU does,
// and Linux probes in that order, so the first disk becomes /dev/vda), the
// entropy source and the console take the lowest ones.

import { MmioBus } from './bus.js';
import { VIRTIO_MMIO_SIZE, VIRTIO_MMIO_SLOTS, virtioMmioBase, virtioMmioIrq } from './layout.js';
import type { Plic } from '../devices/plic.js';
import type { GuestMemory } from '../devices/virtio/memory.js';
import { VirtioMmio, type VirtioDevice } from '../devices/virtio/mmio.js';
import { VirtioBlk } from '../devices/virtio/blk/device.js';
import { VirtioRng } from '../devices/virtio/rng.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import { VirtioNet, type NicDeviceCounters, type NicPort } from '../devices/virtio/net.js';
import type { BlockBackend } from '../storage/backend.js';

export interface VirtioDiskConfig {
  backend: BlockBackend;
  serial?: string;
}

export interface VirtioNicConfig {
  mac: Uint8Array;
  port: NicPort;
  count?: (c: keyof NicDeviceCounters, n: number) => void;
}

export interface VirtioConfig {
  disks?: readonly VirtioDiskConfig[];
  /** virtio-net NICs, in order (eth0 first). */
  nics?: readonly VirtioNicConfig[];
  /** virtio-rng (default true; needs the host's randomBytes). */
  rng?: boolean;
  /** virtio-console, the guest's hvc0 (default false). */
  virtioConsole?: boolean;
}

export interface VirtioWiring {
  mem: GuestMemory;
  bus: MmioBus;
  plic: Plic;
  consoleOut(bytes: Uint8Array): void;
  randomBytes?(n: number): Uint8Array;
  log?(message: string): void;
}

export interface VirtioSet {
  /** Occupied slots, for the device tree. */
  slots: number[];
  transports: VirtioMmio[];
  console: VirtioConsole | null;
  nics: VirtioNet[];
}

export function attachVirtio(cfg: VirtioConfig, w: VirtioWiring): { ok: true; set: VirtioSet } | { ok: false; error: string } {
  const low: VirtioDevice[] = [];
  let console: VirtioConsole | null = null;
  if ((cfg.rng ?? true) && w.randomBytes) low.push(new VirtioRng(w.randomBytes));
  if (cfg.virtioConsole) {
    console = new VirtioConsole((b) => w.consoleOut(b));
    low.push(console);
  }
  const nics = (cfg.nics ?? []).map((n, i) => new VirtioNet({ mac: n.mac, port: n.port, count: n.count, log: w.log }, `virtio-net${i}`));
  // Slots are probed high to low: NICs go below the disks so eth0 is the first NIC.
  low.push(...[...nics].reverse());
  const disks = cfg.disks ?? [];
  if (disks.length + low.length > VIRTIO_MMIO_SLOTS) {
    return { ok: false, error: `too many virtio devices: ${disks.length} disks and ${low.length} others (${VIRTIO_MMIO_SLOTS} slots)` };
  }
  const placed: [number, VirtioDevice][] = [];
  disks.forEach((d, i) => placed.push([VIRTIO_MMIO_SLOTS - 1 - i, new VirtioBlk(d, `virtio-blk${i}`)]));
  low.forEach((d, i) => placed.push([i, d]));
  const set: VirtioSet = { slots: [], transports: [], console, nics };
  for (const [slot, dev] of placed) {
    const t = new VirtioMmio(dev, {
      mem: w.mem,
      irq: (level) => w.plic.setIrq(virtioMmioIrq(slot), level),
      log: w.log,
    });
    w.bus.map(virtioMmioBase(slot), VIRTIO_MMIO_SIZE, t);
    set.slots.push(slot);
    set.transports.push(t);
  }
  return { ok: true, set };
}

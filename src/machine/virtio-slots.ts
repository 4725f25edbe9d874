// Puts the machine's virtio devices into the virtio-mmio slots: disks take the
// highest slots first (the device tree lists slots high to low, as QEMU does,
// and Linux probes in that order, so the first disk becomes /dev/vda), the
// entropy source and the console take the lowest ones; the balloon and the
// buttons (virtio-input) come after the NICs, so adding them moves no other device.

import { MmioBus } from './bus.js';
import { VIRTIO_MMIO_SIZE, VIRTIO_MMIO_SLOTS, virtioMmioBase, virtioMmioIrq } from './layout.js';
import type { Plic } from '../devices/plic.js';
import type { GuestMemory } from '../devices/virtio/memory.js';
import { VirtioMmio, type VirtioDevice } from '../devices/virtio/mmio.js';
import { VirtioBlk } from '../devices/virtio/blk/device.js';
import { VirtioRng } from '../devices/virtio/rng.js';
import { VirtioConsole } from '../devices/virtio/console.js';
import { VirtioNet, type NicDeviceCounters, type NicLimits, type NicPort } from '../devices/virtio/net.js';
import { VirtioBalloon, BALLOON_PAGE } from '../devices/virtio/balloon.js';
import { VirtioInput } from '../devices/virtio/input/device.js';
import type { RateLimits } from '../devices/rate-limiter.js';
import type { BlockBackend } from '../storage/backend.js';

export interface VirtioDiskConfig {
  backend: BlockBackend;
  serial?: string;
  /** I/O rate limits (see devices/rate-limiter.ts). */
  limits?: RateLimits;
}

/** virtio-balloon settings. */
export interface VirtioBalloonConfig {
  /** Initial target in MiB (default 0). */
  targetMiB?: number;
  /** How often to ask the guest for memory statistics, device clock ms (default 2000; 0 = never by itself). */
  statsIntervalMs?: number;
  /** Host hook that returns given-up guest pages to the OS (see VirtioBalloon's BalloonOptions.release). */
  release?: (ram: Uint8Array, off: number, len: number) => number;
}

export interface VirtioNicConfig {
  mac: Uint8Array;
  port: NicPort;
  count?: (c: keyof NicDeviceCounters, n: number) => void;
  limits?: NicLimits;
  /** On restore, this MAC replaces the snapshot's (a clone's new identity) instead of having to equal it. */
  newMac?: boolean;
}

export interface VirtioConfig {
  disks?: readonly VirtioDiskConfig[];
  /** virtio-net NICs, in order (eth0 first). */
  nics?: readonly VirtioNicConfig[];
  /** virtio-rng (default true; needs the host's randomBytes). */
  rng?: boolean;
  /** virtio-console, the guest's hvc0 (default false). */
  virtioConsole?: boolean;
  /** virtio-balloon (default off). */
  balloon?: VirtioBalloonConfig | boolean;
  /** virtio-input with a power and a restart button, for graceful shutdown and reboot (default off; left out when no slot is free). */
  powerButton?: boolean;
}

export interface VirtioWiring {
  mem: GuestMemory;
  bus: MmioBus;
  plic: Plic;
  consoleOut(bytes: Uint8Array): void;
  randomBytes?(n: number): Uint8Array;
  log?(message: string): void;
  /** Device clock in ms for rate limiters and timed device work (guest time in deterministic runs). */
  clock?(): number;
}

export interface VirtioSet {
  /** Occupied slots, for the device tree. */
  slots: number[];
  transports: VirtioMmio[];
  console: VirtioConsole | null;
  nics: VirtioNet[];
  /** The disks in --disk order, and the balloon, for limits and statistics. */
  disks: VirtioBlk[];
  balloon: VirtioBalloon | null;
  /** The buttons, or null without them. */
  input: VirtioInput | null;
}

export function attachVirtio(cfg: VirtioConfig, w: VirtioWiring): { ok: true; set: VirtioSet } | { ok: false; error: string } {
  const low: VirtioDevice[] = [];
  let console: VirtioConsole | null = null;
  if ((cfg.rng ?? true) && w.randomBytes) low.push(new VirtioRng(w.randomBytes));
  if (cfg.virtioConsole) {
    console = new VirtioConsole((b) => w.consoleOut(b));
    low.push(console);
  }
  const nics = (cfg.nics ?? []).map((n, i) => new VirtioNet({ mac: n.mac, port: n.port, count: n.count, log: w.log, limits: n.limits, clock: w.clock, newMac: n.newMac, deferTransmit: true }, `virtio-net${i}`));
  // Slots are probed high to low: NICs go below the disks so eth0 is the first NIC.
  low.push(...[...nics].reverse());
  let balloon: VirtioBalloon | null = null;
  if (cfg.balloon) {
    const b = cfg.balloon === true ? {} : cfg.balloon;
    balloon = new VirtioBalloon({
      targetPages: Math.round(((b.targetMiB ?? 0) * 1024 * 1024) / BALLOON_PAGE),
      statsIntervalMs: b.statsIntervalMs,
      clock: w.clock,
      release: b.release,
    });
    low.push(balloon);
  }
  const disks = cfg.disks ?? [];
  // The buttons take a slot only when one is free: a VM that fills every slot
  // with disks and NICs keeps working, without graceful shutdown.
  const input = cfg.powerButton && disks.length + low.length < VIRTIO_MMIO_SLOTS ? new VirtioInput() : null;
  if (input) low.push(input);
  if (disks.length + low.length > VIRTIO_MMIO_SLOTS) {
    return { ok: false, error: `too many virtio devices: ${disks.length} disks and ${low.length} others (${VIRTIO_MMIO_SLOTS} slots)` };
  }
  const placed: [number, VirtioDevice][] = [];
  const blks = disks.map((d, i) => new VirtioBlk({ ...d, clock: w.clock }, `virtio-blk${i}`));
  blks.forEach((b, i) => placed.push([VIRTIO_MMIO_SLOTS - 1 - i, b]));
  low.forEach((d, i) => placed.push([i, d]));
  const set: VirtioSet = { slots: [], transports: [], console, nics, disks: blks, balloon, input };
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

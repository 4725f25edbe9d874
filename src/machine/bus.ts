// Physical MMIO routing for devices that live on the host side (everything but
// RAM and the CLINT, which the core handles itself).

import type { MmioDevice, AccessSize } from '../devices/device.js';

interface Mapping {
  base: number;
  size: number;
  device: MmioDevice;
  /** Accesses so far (--stats: every one is an exit from the core to JavaScript). */
  reads: number;
  writes: number;
}

export class MmioBus {
  private readonly maps: Mapping[] = [];
  /** Called when an access hits no device (the core then raises an access fault). */
  onUnmapped: (addr: number) => void = () => {};

  map(base: number, size: number, device: MmioDevice): void {
    for (const m of this.maps) {
      if (base < m.base + m.size && m.base < base + size) {
        throw new Error(`MMIO range of ${device.name} overlaps ${m.device.name}`);
      }
    }
    this.maps.push({ base, size, device, reads: 0, writes: 0 });
  }

  private find(addr: number): Mapping | undefined {
    for (const m of this.maps) if (addr >= m.base && addr - m.base < m.size) return m;
    return undefined;
  }

  read(addr: number, size: number): number {
    const m = this.find(addr);
    if (!m) {
      this.onUnmapped(addr);
      return 0;
    }
    m.reads++;
    return m.device.read(addr - m.base, size as AccessSize) >>> 0;
  }

  write(addr: number, size: number, value: number): void {
    const m = this.find(addr);
    if (!m) {
      this.onUnmapped(addr);
      return;
    }
    m.writes++;
    m.device.write(addr - m.base, size as AccessSize, value >>> 0);
  }

  /** Accesses per device so far, busiest first (devices never touched are left out). */
  accessCounts(): { name: string; reads: number; writes: number }[] {
    return this.maps
      .filter((m) => m.reads + m.writes > 0)
      .map((m) => ({ name: m.device.name, reads: m.reads, writes: m.writes }))
      .sort((a, b) => b.reads + b.writes - (a.reads + a.writes));
  }

  /** The mapped ranges, for the device tree and for diagnostics. */
  ranges(): ReadonlyArray<Readonly<Mapping>> {
    return this.maps;
  }
}

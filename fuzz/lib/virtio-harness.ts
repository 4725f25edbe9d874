// Drives one virtio device through its virtio-mmio transport the way a hostile
// driver would: the fuzz input is a program of register writes, raw guest-RAM
// stores, descriptor-table entries, ring offers and notifications. The device
// must never throw (driver mistakes end in DEVICE_NEEDS_RESET) and never touch
// memory outside the guest RAM block.

import type { GuestMemory } from '../../src/devices/virtio/memory.js';
import {
  VirtioMmio, type VirtioDevice, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
  VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_CONFIG,
} from '../../src/devices/virtio/mmio.js';
import type { AccessSize } from '../../src/devices/device.js';
import { Bytes } from './bytes.js';
import { check } from './expect.js';

export const RAM_BASE = 0x8000_0000;
/** Small RAM: every random offset lands somewhere meaningful. */
export const RAM_SIZE = 64 * 1024;
/** Queue q's descriptor table, driver ring and device ring live in a 0x2000 window. */
const QWIN = 0x2000;
const desc = (q: number) => RAM_BASE + 0x1000 + q * QWIN;
const avail = (q: number) => desc(q) + 0x1000;
const used = (q: number) => desc(q) + 0x1400;

const SIZES: readonly AccessSize[] = [1, 2, 4];

export interface DeviceUnderTest {
  device: VirtioDevice;
  /** Host-side events (input arriving, a new balloon target, a timer): op byte and the input. */
  hostEvent?(b: Bytes): void;
}

/** Run one fuzz program against a freshly built device. */
export function runVirtioProgram(data: Uint8Array, make: (mem: GuestMemory) => DeviceUnderTest): void {
  const ram = new Uint8Array(RAM_SIZE);
  const dv = new DataView(ram.buffer);
  const mem: GuestMemory = {
    ram,
    base: RAM_BASE,
    noteWrite(off, len) {
      check(Number.isInteger(off) && Number.isInteger(len) && off >= 0 && len >= 0 && off + len <= RAM_SIZE, `device wrote outside RAM: ${off}+${len}`);
    },
  };
  const dut = make(mem);
  const t = new VirtioMmio(dut.device, { mem, irq: () => {}, log: () => {} });
  const b = new Bytes(data);
  const nq = dut.device.queueSizes.length;
  const sizes: number[] = [];

  // Bring-up, shaped by the first bytes: features, queue sizes, and sometimes a wild ring address.
  const featuresLo = b.u32();
  const featuresHi = b.u8() & 1 ? 1 : b.u8();
  t.write(VIRTIO_MMIO_STATUS, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  t.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, 0);
  t.write(VIRTIO_MMIO_DRIVER_FEATURES, 4, featuresLo);
  t.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, 1);
  t.write(VIRTIO_MMIO_DRIVER_FEATURES, 4, featuresHi);
  t.write(VIRTIO_MMIO_STATUS, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  for (let q = 0; q < nq; q++) {
    const size = b.pickOr([8, 4, 16, 1, 2, 3, 256], () => b.u16());
    sizes.push(size);
    t.write(VIRTIO_MMIO_QUEUE_SEL, 4, q);
    t.write(VIRTIO_MMIO_QUEUE_NUM, 4, size);
    const wild = b.u8() === 0xff;
    t.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 4, wild ? b.u32() : desc(q) >>> 0);
    t.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 4, 0);
    t.write(VIRTIO_MMIO_QUEUE_DRIVER_LOW, 4, avail(q) >>> 0);
    t.write(VIRTIO_MMIO_QUEUE_DEVICE_LOW, 4, used(q) >>> 0);
    t.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
  }
  t.write(VIRTIO_MMIO_STATUS, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);

  // A RAM address from the input: mostly inside RAM, sometimes anywhere.
  const addr = (): number => (b.u8() === 0xff ? b.u64() : RAM_BASE + (b.u16() % RAM_SIZE));

  let steps = 0;
  while (!b.done && steps++ < 256) {
    const q = b.u8() % nq;
    const size = Math.max(1, Math.min(sizes[q], 256));
    switch (b.u8() % 9) {
      case 0: { // store bytes anywhere in RAM
        const off = b.u16() % RAM_SIZE;
        const bytes = b.bytes(b.u8());
        ram.set(bytes.subarray(0, RAM_SIZE - off), off);
        break;
      }
      case 1: { // one descriptor
        const i = b.u8() % size;
        const o = desc(q) - RAM_BASE + 16 * i;
        dv.setBigUint64(o, BigInt(addr()), true);
        dv.setUint32(o + 8, b.u8() === 0xff ? b.u32() : b.u16() % 4096, true);
        dv.setUint16(o + 12, b.u8() & 0x7, true);
        dv.setUint16(o + 14, b.u8() === 0xff ? b.u16() : b.u8() % size, true);
        break;
      }
      case 2: { // offer a head on the driver ring
        const a = avail(q) - RAM_BASE;
        const idx = dv.getUint16(a + 2, true);
        dv.setUint16(a + 4 + 2 * (idx % size), b.u8() === 0xff ? b.u16() : b.u8() % size, true);
        dv.setUint16(a + 2, (idx + 1) & 0xffff, true);
        break;
      }
      case 3:
        t.write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, q);
        break;
      case 4: // a transport or config register write
        t.write(b.u8() & 0x1fc, b.pick(SIZES), b.u32());
        break;
      case 5:
        t.read(VIRTIO_MMIO_CONFIG + (b.u8() & 0x7f), b.pick(SIZES));
        break;
      case 6:
        dut.hostEvent?.(b);
        break;
      case 7: // driver ring flags / idx / used_event, raw
        dv.setUint16(avail(q) - RAM_BASE + b.pick([0, 2, 4 + 2 * size]), b.u16(), true);
        break;
      case 8: // notify every queue
        for (let k = 0; k < nq; k++) t.write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, k);
        break;
    }
  }
}

// The device tree builder with user-controlled inputs: kernel command line
// (--append / the API's cmdline), RAM size, initrd range, ISA and MMU strings,
// virtio slots, hart count, padding. It must answer with an error value or a
// well-formed DTB whose /chosen/bootargs is the command line given.
import { buildVirtFdt, parseIsa, type VirtDevice } from '../../src/machine/virt-fdt.js';
import { Bytes } from '../lib/bytes.js';
import { readDtb } from '../lib/dtb.js';
import { check } from '../lib/expect.js';

const DEVICES: readonly VirtDevice[] = ['test', 'clint', 'plic', 'uart'];

export function fuzz(data: Buffer): void {
  const b = new Bytes(data);
  const mode = b.u8();
  const ramSize = mode & 1 ? b.u64() : (b.u16() + 1) * 0x10_0000;
  const initrd = mode & 2 ? { start: b.u64(), end: b.u64() } : undefined;
  const isa = mode & 4 ? b.str() : undefined;
  const mmuType = mode & 8 ? b.pickOr(['riscv,sv39', 'riscv,sv48', 'riscv,sv57', 'riscv,none'], () => b.str()) : undefined;
  const harts = mode & 16 ? b.u8() : undefined;
  const virtioSlots = mode & 32 ? Array.from(b.bytes(b.u8() % 10), (x) => x % 12) : undefined;
  const devices = mode & 64 ? DEVICES.filter(() => b.bool()) : undefined;
  const padding = mode & 128 ? b.u16() : undefined;
  const noArgs = b.bool();
  const encoding = b.bool() ? 'utf8' : 'latin1';
  const bootargs = noArgs ? undefined : Buffer.from(b.rest()).toString(encoding);
  if (isa !== undefined) parseIsa(isa);
  const r = buildVirtFdt({ ramSize, initrd, isa, mmuType, harts, virtioSlots, devices, padding, bootargs });
  if (!r.ok) {
    check(typeof r.error === 'string' && r.error.length > 0, 'error without a message');
    return;
  }
  const props = readDtb(r.dtb);
  if (bootargs !== undefined) {
    const got = props.get('/chosen/bootargs');
    check(got !== undefined, 'bootargs missing from /chosen');
    const want = Buffer.concat([Buffer.from(bootargs, 'utf8'), Buffer.from([0])]);
    check(Buffer.from(got!).equals(want), 'bootargs in the DTB differ from the command line given');
  }
}

// The split-virtqueue walker on its own: descriptor tables and rings straight from
// the input, with the results checked (every range inside RAM, lengths adding up,
// readable before writable, the chain no longer than the table allows).
import type { GuestMemory } from '../../src/devices/virtio/memory.js';
import { DESC_SIZE, Virtqueue, gather, scatter, slices, walkChain, type Chain } from '../../src/devices/virtio/queue.js';
import { Bytes } from '../lib/bytes.js';
import { check } from '../lib/expect.js';

const BASE = 0x8000_0000;
const RAM = 4096;

function checkChain(c: Chain, size: number, indirectMax: number): void {
  let r = 0;
  let w = 0;
  for (const x of c.readable) {
    check(x.off >= 0 && x.len >= 0 && x.off + x.len <= RAM, `readable range ${x.off}+${x.len} outside RAM`);
    r += x.len;
  }
  for (const x of c.writable) {
    check(x.off >= 0 && x.len >= 0 && x.off + x.len <= RAM, `writable range ${x.off}+${x.len} outside RAM`);
    w += x.len;
  }
  check(r === c.readLen && w === c.writeLen, 'chain lengths do not add up');
  check(c.readable.length + c.writable.length <= Math.max(size, indirectMax), 'chain longer than any table it came from');
  check(c.head >= 0 && c.head < size, `chain head ${c.head} outside the queue`);
}

export function fuzz(data: Buffer): void {
  const b = new Bytes(data);
  const ram = new Uint8Array(RAM);
  const mem: GuestMemory = { ram, base: BASE };
  const size = b.pickOr([1, 2, 4, 8, 16, 32, 3], () => b.u16());
  const features = { indirect: b.bool(), eventIdx: b.bool() };
  const descAddr = b.u8() === 0xff ? b.u64() : BASE + (b.u16() & ~15) % RAM;
  ram.set(b.bytes(RAM)); // the rest of the input is RAM: tables, rings and buffers
  const indirectMax = RAM / DESC_SIZE;

  // The pure walker from every head.
  for (let head = 0; head < Math.min(size, 64); head++) {
    const r = walkChain(mem, descAddr, size, head, features);
    if (r.ok) checkChain(r.chain, size, indirectMax);
  }

  // The queue object: rings after the table, as a driver might place them.
  const q = new Virtqueue(mem, 256);
  q.size = size;
  q.descAddr = descAddr;
  q.availAddr = BASE + 0x800;
  q.usedAddr = BASE + 0xc00;
  if (q.activate(features) !== null) return;
  const tmp = new Uint8Array(64);
  for (let i = 0; i < 64; i++) {
    const p = q.pop();
    if (p.kind === 'empty' || p.kind === 'error') break;
    checkChain(p.chain, size, indirectMax);
    gather(mem, p.chain.readable, i, tmp);
    scatter(mem, p.chain.writable, i, tmp);
    for (const s of slices(mem, p.chain.writable, i, 100, true)) check(s.length <= 100, 'slice longer than asked');
    q.pushUsed(p.chain.head, p.chain.writeLen);
    q.needsInterrupt();
  }
}

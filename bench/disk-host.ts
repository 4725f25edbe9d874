// The host side of one virtio-blk request, without a guest: a 1 MiB request
// whose data lies in 256 scattered 4 KiB pages of shared memory (like the
// wasm core's RAM, and as Linux hands an O_DIRECT request over), served by the raw and the qcow2
// backend one page at a time (one system call each, as before vectored I/O)
// and with one vectored call (readv/writev, as the device does now). Shows
// what the device's own work per request costs; the guest's side is in
// `npm run bench:disk -- --costs`.
//
//   npm run bench:disk-host -- [--requests N]

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RawDisk } from '../src/storage/raw.js';
import { createQcow2, openQcow2 } from '../src/storage/qcow2.js';
import type { BlockBackend } from '../src/storage/backend.js';
import { table } from './lib/format.js';

const PAGE = 4096;
const MIB = 1 << 20;
const DISK_MIB = 64;

function main(): void {
  const { values } = parseArgs({ options: { requests: { type: 'string', default: '400' } } });
  const requests = Number(values.requests);
  if (!Number.isInteger(requests) || requests < 1) throw new Error('--requests needs a positive integer');
  // Shared memory, as the wasm core's RAM is.
  const ram = new Uint8Array(new SharedArrayBuffer(4 * MIB));
  // Every other page of the first 2 MiB, in a scrambled order: no two neighbours in RAM.
  const order = Array.from({ length: 256 }, (_, i) => (i * 97) % 256);
  const pages = order.map((i) => ram.subarray(2 * i * PAGE, 2 * i * PAGE + PAGE));
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-diskhost-'));
  const rows = [['backend', 'operation', 'page by page (us)', 'vectored (us)', 'speed-up']];
  const time = (fn: (i: number) => void): number => {
    for (let i = 0; i < 50; i++) fn(i);
    const t = performance.now();
    for (let i = 0; i < requests; i++) fn(i);
    return ((performance.now() - t) / requests) * 1000;
  };
  const measure = (name: string, disk: BlockBackend) => {
    for (const write of [false, true]) {
      const at = (i: number) => (i % (DISK_MIB - 2)) * MIB;
      const byPage = time((i) => {
        let pos = at(i);
        for (const p of pages) {
          if (write) disk.write(pos, p);
          else disk.read(pos, p);
          pos += PAGE;
        }
      });
      const vectored = time((i) => (write ? disk.writev!(at(i), pages) : disk.readv!(at(i), pages)));
      rows.push([name, write ? 'write 1 MiB' : 'read 1 MiB', byPage.toFixed(0), vectored.toFixed(0), `${(byPage / vectored).toFixed(2)}x`]);
    }
  };
  try {
    const raw = join(dir, 'disk.raw');
    writeFileSync(raw, new Uint8Array(DISK_MIB * MIB));
    const r = RawDisk.open(raw);
    measure('raw', r);
    r.close();
    const q = join(dir, 'disk.qcow2');
    createQcow2(q, { size: DISK_MIB * MIB });
    const img = openQcow2(q);
    img.write(0, new Uint8Array(DISK_MIB * MIB).fill(1)); // every cluster allocated: the steady state
    measure('qcow2 (64 KiB clusters)', img);
    img.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\nHost side of a 1 MiB virtio-blk request in 256 scattered pages, mean of ${requests} (host page cache)\n\n${table(rows, new Set([2, 3, 4]))}\n`);
}

main();

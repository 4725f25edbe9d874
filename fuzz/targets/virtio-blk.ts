// virtio-blk request parsing and serving, on a real raw disk in a temp file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtioBlk } from '../../src/devices/virtio/blk/device.js';
import { RawDisk } from '../../src/storage/raw.js';
import { runVirtioProgram } from '../lib/virtio-harness.js';

const path = join(mkdtempSync(join(tmpdir(), 'tsvisor-fuzz-blk-')), 'disk.img');
writeFileSync(path, new Uint8Array(64 * 1024));
const disks = [RawDisk.open(path, { readOnly: false }), RawDisk.open(path, { readOnly: true })];

export function fuzz(data: Buffer): void {
  const backend = disks[data.length > 0 ? data[0] & 1 : 0];
  runVirtioProgram(data.subarray(1), () => ({ device: new VirtioBlk({ backend, serial: 'fuzz' }) }));
}

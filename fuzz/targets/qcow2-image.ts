// qcow2 header, extension, L1, refcount table/block and L2 parsing: the input is
// a whole image file. Opening it, reading across the virtual disk and (opened
// writable) writing, discarding and flushing must end in data or a DiskError.
import { writeFileSync } from 'node:fs';
import { DiskError } from '../../src/storage/backend.js';
import { parseHeader } from '../../src/storage/qcow2-header.js';
import { openQcow2 } from '../../src/storage/qcow2.js';
import { allowing, check } from '../lib/expect.js';
import { tempPath } from '../lib/temp.js';

const path = tempPath('image.qcow2');
// Images naming "base.raw" as backing file (like the overlay seed) find one.
writeFileSync(tempPath('base.raw'), new Uint8Array(64 * 1024).fill(0x42));
const buf = new Uint8Array(4096);

export function fuzz(data: Buffer): void {
  allowing([DiskError], () => parseHeader(data, data.length));
  writeFileSync(path, data);
  const readOnly = data.length > 0 && (data[data.length - 1] & 1) === 1;
  const img = allowing([DiskError], () => openQcow2(path, { readOnly }));
  if (!img) return;
  try {
    const size = img.size;
    check(Number.isSafeInteger(size) && size >= 0, `virtual size ${size}`);
    // A spread of offsets: the first clusters, the middle, the end.
    const offsets = [0, 4096, 65536, Math.floor(size / 2), size - 4096].filter((o) => o >= 0 && o + buf.length <= size);
    for (const o of offsets) allowing([DiskError], () => img.read(o, buf));
    if (!readOnly) {
      for (const o of offsets.slice(0, 3)) {
        allowing([DiskError], () => img.write(o, buf.fill(0x5a)));
        allowing([DiskError], () => img.discard(o, 4096));
        allowing([DiskError], () => img.writeZeroes(o, 512));
      }
      allowing([DiskError], () => img.flush());
    }
    allowing([DiskError], () => img.allocatedClusters());
  } finally {
    allowing([DiskError], () => img.close());
  }
}

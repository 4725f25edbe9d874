// Format detection and opening by path (raw or qcow2, detected or forced), as
// `--disk PATH[,format=...]` and the API's disk field do.
import { writeFileSync } from 'node:fs';
import { DiskError } from '../../src/storage/backend.js';
import { detectFormat, openDisk } from '../../src/storage/open.js';
import { allowing, allowingAsync, check } from '../lib/expect.js';
import { tempPath } from '../lib/temp.js';

const path = tempPath('disk.img');

export async function fuzz(data: Buffer): Promise<void> {
  writeFileSync(path, data);
  const detected = allowing([DiskError], () => detectFormat(path));
  check(detected === undefined || detected === 'raw' || detected === 'qcow2', `detected ${String(detected)}`);
  const format = data.length > 0 ? ([undefined, 'raw', 'qcow2'] as const)[data[0] % 3] : undefined;
  const disk = await allowingAsync([DiskError], () => openDisk(path, { format, readOnly: true }));
  if (!disk) return;
  try {
    check(Number.isSafeInteger(disk.size) && disk.size >= 0, `size ${disk.size}`);
    if (disk.size >= 512) allowing([DiskError], () => disk.read(0, new Uint8Array(512)));
  } finally {
    disk.close();
  }
}

// A sequence of guest I/O on a real qcow2 image (made by qemu-img, 512-byte
// clusters so metadata is touched often), with reopen in between, checked
// against a plain byte-array model of the disk: every read must match it.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { DiskError } from '../../src/storage/backend.js';
import { openQcow2, type Qcow2Image } from '../../src/storage/qcow2.js';
import { Bytes } from '../lib/bytes.js';
import { check } from '../lib/expect.js';
import { tempPath } from '../lib/temp.js';

const SIZE = 256 * 1024;
const template = tempPath('template.qcow2');
execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', template, String(SIZE)]);
const templateBytes = readFileSync(template);
const path = tempPath('ops.qcow2');

export function fuzz(data: Buffer): void {
  writeFileSync(path, templateBytes);
  const model = new Uint8Array(SIZE);
  const b = new Bytes(data);
  let img: Qcow2Image = openQcow2(path);
  try {
    let steps = 0;
    while (!b.done && steps++ < 64) {
      const op = b.u8() % 6;
      const off = b.u8() === 0xff ? b.u32() % SIZE : (b.u16() * 64) % SIZE;
      const len = Math.min(SIZE - off, b.u8() === 0xff ? b.u16() * 8 : b.u16() % 4096);
      switch (op) {
        case 0: {
          const v = b.u8();
          const src = new Uint8Array(len);
          for (let i = 0; i < len; i++) src[i] = (v + i) & 0xff;
          img.write(off, src);
          model.set(src, off);
          break;
        }
        case 1: {
          const got = new Uint8Array(len);
          img.read(off, got);
          for (let i = 0; i < len; i++) check(got[i] === model[off + i], `read ${off}+${len}: byte ${off + i} is ${got[i]}, wrote ${model[off + i]}`);
          break;
        }
        case 2:
          img.writeZeroes(off, len);
          model.fill(0, off, off + len);
          break;
        case 3:
          // Discarded bytes become unspecified: the model follows what the image now reads.
          img.discard(off, len);
          img.read(off, model.subarray(off, off + len));
          break;
        case 4:
          img.flush();
          break;
        case 5:
          img.close();
          img = openQcow2(path);
          break;
      }
    }
    const all = new Uint8Array(SIZE);
    img.read(0, all);
    for (let i = 0; i < SIZE; i++) if (all[i] !== model[i]) check(false, `final read: byte ${i} is ${all[i]}, model ${model[i]}`);
  } catch (e) {
    // On a valid image every operation must succeed: even a DiskError is a finding here.
    if (e instanceof DiskError) throw new Error(`DiskError on a valid image: ${e.message}`);
    throw e;
  } finally {
    img.close();
  }
}

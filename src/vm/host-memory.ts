// Host memory operations on guest RAM that JavaScript cannot do itself: giving
// pages back to the OS (balloon) and counting the pages the host really backs
// (monitoring). Both go through the small native addon build/guest-memory.node
// (native/guest-memory.c); without it tsvisor still runs, the balloon zeroes
// pages instead of releasing them, and touched RAM is reported as unknown.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import type { SeekData } from '../storage/backend.js';

interface GuestMemoryAddon {
  release(buffer: ArrayBuffer, offset: number, length: number): number;
  resident(buffer: ArrayBuffer, offset: number, length: number): number;
  trim(): boolean;
  mapFile(buffer: ArrayBuffer, offset: number, length: number, path: string): boolean;
  dataPages(buffer: ArrayBuffer, offset: number, length: number): Uint8Array;
  seekData?(fd: number, offset: number, hole: boolean): number;
  pageSize: number;
}

export interface HostMemory {
  /** Return [off, off + len) of `ram` to the host; it reads as zero afterwards. Returns the bytes that were resident. */
  release(ram: Uint8Array, off: number, len: number): number;
  /** Bytes of `ram` the host backs with memory now. */
  resident(ram: Uint8Array): number;
  /** Return the C heap's free memory to the OS (V8's compilers leave a lot there after translating). */
  trim(): void;
  /**
   * Map `path` over `ram` copy-on-write (snapshot restore: pages load as the guest
   * touches them). Throws when `ram` is not host-page aligned or the file is short.
   */
  mapFile(ram: Uint8Array, path: string): void;
  /** One byte per 4 KiB page of `ram`: 1 if it holds data (untouched pages are not read). Throws if host pages are not 4 KiB. */
  dataPages(ram: Uint8Array): Uint8Array;
  /** lseek(SEEK_DATA / SEEK_HOLE) on an open file (storage's SeekData); absent in an addon built before it. */
  seekData?: SeekData;
}

let loaded: HostMemory | null | undefined;
let whyNot = '';

/** The addon, or null (see hostMemoryUnavailableReason()). Loaded once per thread. */
export function hostMemory(): HostMemory | null {
  if (loaded !== undefined) return loaded;
  const path = fileURLToPath(new URL('../../../build/guest-memory.node', import.meta.url));
  if (!existsSync(path)) {
    whyNot = 'build/guest-memory.node is missing (npm run build:native needs a C compiler and Node headers)';
    return (loaded = null);
  }
  try {
    const addon = createRequire(import.meta.url)(path) as GuestMemoryAddon;
    loaded = wrap(addon);
  } catch (e) {
    whyNot = `build/guest-memory.node did not load: ${(e as Error).message}`;
    loaded = null;
  }
  return loaded;
}

export function hostMemoryUnavailableReason(): string {
  return whyNot;
}

function wrap(addon: GuestMemoryAddon): HostMemory {
  const page = addon.pageSize;
  return {
    release(ram, off, len) {
      const end = off + len;
      if (off < 0 || end > ram.length || len <= 0) return 0;
      const before = addon.resident(ram.buffer as ArrayBuffer, ram.byteOffset + off, len);
      addon.release(ram.buffer as ArrayBuffer, ram.byteOffset + off, len);
      // The addon only drops whole host pages; a host page larger than the
      // guest's (or an unaligned range) leaves edges that must still read as zero.
      const abs = ram.byteOffset + off;
      const headEnd = Math.min(end, off + ((page - (abs % page)) % page));
      if (headEnd > off) ram.fill(0, off, headEnd);
      const tailStart = Math.max(headEnd, end - ((ram.byteOffset + end) % page));
      if (tailStart < end) ram.fill(0, tailStart, end);
      return before;
    },
    resident(ram) {
      return addon.resident(ram.buffer as ArrayBuffer, ram.byteOffset, ram.byteLength);
    },
    trim() {
      addon.trim();
    },
    dataPages(ram) {
      return addon.dataPages(ram.buffer as ArrayBuffer, ram.byteOffset, ram.byteLength);
    },
    mapFile(ram, path) {
      addon.mapFile(ram.buffer as ArrayBuffer, ram.byteOffset, ram.byteLength, path);
    },
    seekData: addon.seekData ? (fd, offset, hole) => addon.seekData!(fd, offset, hole) : undefined,
  };
}

// What a virtual disk device sees of its storage. Synchronous: the VM runs in
// its own worker thread, so a blocking read stalls only that guest. Offsets and
// lengths are in bytes; callers keep every range inside [0, size).

export interface BlockBackend {
  /** Virtual size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Fill `buf` from `offset`. */
  read(offset: number, buf: Uint8Array): void;
  /** Write `buf` at `offset` (throws on a read-only backend). */
  write(offset: number, buf: Uint8Array): void;
  /** Make every completed write durable (fsync). */
  flush(): void;
  /** The guest no longer needs these bytes; their contents become unspecified. */
  discard(offset: number, len: number): void;
  /** Make the range read back as zeroes. */
  writeZeroes(offset: number, len: number): void;
  /** Release the file(s); the backend is unusable afterwards. */
  close(): void;
  /**
   * False when [offset, offset + len) is known to read as zeros without a read
   * (a hole of a sparse file, clusters allocated in no layer of an image), true
   * when it may hold data. Optional: a backend without it may hold data anywhere.
   */
  mayHoldData?(offset: number, len: number): boolean;
}

/** lseek(SEEK_DATA, or SEEK_HOLE when `hole`) on an open file: the offset, or -1 past the last data; throws if the file system cannot say. */
export type SeekData = (fd: number, offset: number, hole: boolean) => number;

/** A disk problem a user can cause (missing file, bad format, corrupt image): shown as one line. */
export class DiskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiskError';
  }
}

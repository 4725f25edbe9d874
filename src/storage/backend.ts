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
  /**
   * Optional vectored forms: fill / write the buffers in order as one range
   * from `offset` (a request's guest pages in one system call where the format allows).
   */
  readv?(offset: number, bufs: readonly Uint8Array[]): void;
  writev?(offset: number, bufs: readonly Uint8Array[]): void;
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

/** Read the range at `offset` into `bufs` in order: vectored when the backend can, else buffer by buffer. */
export function readInto(b: BlockBackend, offset: number, bufs: readonly Uint8Array[]): void {
  if (b.readv && bufs.length > 1) return b.readv(offset, bufs);
  for (const s of bufs) {
    b.read(offset, s);
    offset += s.length;
  }
}

/** Write `bufs` in order as one range at `offset`: vectored when the backend can, else buffer by buffer. */
export function writeFrom(b: BlockBackend, offset: number, bufs: readonly Uint8Array[]): void {
  if (b.writev && bufs.length > 1) return b.writev(offset, bufs);
  for (const s of bufs) {
    b.write(offset, s);
    offset += s.length;
  }
}

// Frames over a byte stream (a pipe or a Unix socket): each frame is preceded by
// its length as 2 bytes, big-endian. Used by the TAP helper's pipe and by
// switches shared between processes.

/** Splits a byte stream into frames; `push` returns false for a length beyond `maxFrame`. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (f: Uint8Array) => void, private readonly maxFrame = 65535) {}

  push(b: Buffer): boolean {
    this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
    let off = 0;
    while (this.buf.length - off >= 2) {
      const len = this.buf.readUInt16BE(off);
      if (len > this.maxFrame) return false;
      if (this.buf.length - off < 2 + len) break;
      this.onFrame(this.buf.subarray(off + 2, off + 2 + len));
      off += 2 + len;
    }
    this.buf = this.buf.subarray(off);
    return true;
  }
}

/** One frame with its length prefix, ready to write. */
export function encodeFrame(frame: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(2 + frame.length);
  rec.writeUInt16BE(frame.length, 0);
  rec.set(frame, 2);
  return rec;
}

// A VM's console log, written off the daemon's event loop path: chunks go into
// a bounded queue and one asynchronous write drains it at a time. When the disk
// is slower than the guest the queue fills and further chunks are dropped and
// counted, so a chatty guest never blocks the daemon. The file stays bounded
// as before: past `maxBytes` it becomes NAME.log.1 (one older file is kept).

import { open, rename, type FileHandle } from 'node:fs/promises';

/** Console bytes waiting for the disk, per VM, before new ones are dropped. */
export const DEFAULT_LOG_QUEUE_BYTES = 1024 * 1024;

export class ConsoleLog {
  /** Bytes dropped because the queue was full (since the daemon started). */
  droppedBytes = 0;
  /** Bytes written to the log files (since the daemon started). */
  writtenBytes = 0;

  private file: FileHandle | null = null;
  private fileBytes = 0;
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private accepting = false;
  private draining: Promise<void> | null = null;
  /** Bumped by every open() and close(): a drain that sees it change closes nothing it should not. */
  private epoch = 0;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly onError: (msg: string) => void,
    private readonly queueLimit = DEFAULT_LOG_QUEUE_BYTES,
  ) {}

  /** Accept chunks again (the file is opened by the first write). */
  open(): void {
    this.accepting = true;
    this.epoch++;
  }

  /** Queue a chunk; never blocks and never throws. */
  write(data: Uint8Array): void {
    if (!this.accepting || data.length === 0) return;
    if (this.queuedBytes + data.length > this.queueLimit) {
      this.droppedBytes += data.length;
      return;
    }
    // The caller may reuse its buffer; the queue keeps its own bytes.
    this.queue.push(data.slice());
    this.queuedBytes += data.length;
    this.draining ??= this.drain();
  }

  /** Stop accepting chunks; the queued ones are still written, then the file is closed. */
  async close(): Promise<void> {
    this.accepting = false;
    this.epoch++;
    const epoch = this.epoch;
    await this.draining;
    if (this.epoch === epoch && this.file) {
      const f = this.file;
      this.file = null;
      await f.close().catch(() => {});
    }
  }

  /** Drop what is queued and close now (the VM's logs are being removed). */
  async discard(): Promise<void> {
    this.queue = [];
    this.queuedBytes = 0;
    await this.close();
  }

  /** A write is queued or in flight. */
  get busy(): boolean {
    return this.draining !== null;
  }

  /** Bytes queued, not yet on disk. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = Buffer.concat(this.queue, this.queuedBytes);
        this.queue = [];
        this.queuedBytes = 0;
        try {
          await this.writeOut(batch);
        } catch (e) {
          this.droppedBytes += batch.length;
          this.onError(`console log write failed: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    } finally {
      this.draining = null;
    }
  }

  private async writeOut(batch: Buffer): Promise<void> {
    if (!this.file) {
      this.file = await open(this.path, 'a', 0o600);
      this.fileBytes = (await this.file.stat()).size;
    }
    if (this.fileBytes > 0 && this.fileBytes + batch.length > this.maxBytes) {
      // Keep the log bounded: the current file becomes the one older file.
      const f = this.file;
      this.file = null;
      await f.close();
      await rename(this.path, `${this.path}.1`);
      this.file = await open(this.path, 'a', 0o600);
      this.fileBytes = 0;
    }
    // A batch larger than the whole log keeps only its end.
    const data = batch.length > this.maxBytes ? batch.subarray(batch.length - this.maxBytes) : batch;
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.file.write(data, off, data.length - off);
      off += bytesWritten;
    }
    this.fileBytes += data.length;
    this.writtenBytes += data.length;
  }
}

// A bounded, crash-safe record file in the daemon's state directory: one
// JSON value per line, appended as records happen. The file is kept small by
// compaction: once the lines appended since the last compaction outgrow what
// the owner holds in memory (plus some slack), the owner's whole state is
// written to FILE.tmp, synced and renamed over FILE. A crash can therefore
// leave at worst a torn last line (skipped when read back) or a stale
// FILE.tmp (removed), never a half-written file. Writes are asynchronous,
// one at a time, so a slow disk never holds up the event loop; what the disk
// cannot take (full, failing) is dropped with one message in the daemon's
// log, and the next compaction writes the state again.

import { closeSync, existsSync, openSync, readSync, fstatSync, rmSync } from 'node:fs';
import { appendFile, open, rename, rm } from 'node:fs/promises';

export interface JsonLinesOptions {
  /** Every record the owner keeps now, oldest first: what a compaction writes. */
  state: () => unknown[];
  /** Appended lines beyond the last compaction's size before the next one. */
  slackBytes: number;
  /** A file larger than this is not read at start (it is replaced at the first write). */
  maxReadBytes: number;
  log: (msg: string) => void;
}

export interface LoadResult {
  records: unknown[];
  /** Lines that were not JSON (a torn last line after a crash, or damage). */
  skipped: number;
}

/** Pending appends beyond this wait for a compaction instead (a disk far slower than the records). */
const MAX_PENDING_BYTES = 1024 * 1024;

export class JsonLinesFile {
  private pending: string[] = [];
  private pendingBytes = 0;
  private compactNext = false;
  /** Size of the file on disk (as far as this process wrote it). */
  private size = 0;
  /** Size of the file right after the last compaction. */
  private base = 0;
  private writing: Promise<void> | null = null;
  private failed = false;
  private closed = false;

  constructor(readonly path: string, private readonly opts: JsonLinesOptions) {}

  /** Read what an earlier run left (synchronously, at start). */
  load(): LoadResult {
    rmSync(`${this.path}.tmp`, { force: true }); // a compaction cut short by a crash
    if (!existsSync(this.path)) return { records: [], skipped: 0 };
    const fd = openSync(this.path, 'r');
    let text: string;
    try {
      const size = fstatSync(fd).size;
      this.size = size;
      if (size > this.opts.maxReadBytes) {
        this.opts.log(`${this.path}: ${size} bytes, more than the ${this.opts.maxReadBytes} expected: not read, replaced at the next write`);
        this.compactNext = true;
        return { records: [], skipped: 0 };
      }
      const buf = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const n = readSync(fd, buf, off, size - off, off);
        if (n === 0) break;
        off += n;
      }
      text = buf.subarray(0, off).toString('utf8');
    } finally {
      closeSync(fd);
    }
    const records: unknown[] = [];
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        records.push(JSON.parse(line) as unknown);
      } catch {
        skipped++;
      }
    }
    this.base = this.size;
    // A torn or damaged line is rewritten away soon rather than kept forever.
    if (skipped > 0) this.compactNext = true;
    return { records, skipped };
  }

  append(record: unknown): void {
    if (this.closed) return;
    if (this.pendingBytes > MAX_PENDING_BYTES) {
      // The disk is far behind: the next write is a compaction, which holds this record too.
      this.pending = [];
      this.pendingBytes = 0;
      this.compactNext = true;
    } else {
      const line = `${JSON.stringify(record)}\n`;
      this.pending.push(line);
      this.pendingBytes += Buffer.byteLength(line);
    }
    this.kick();
  }

  /** Every record handed over so far is on disk (or was dropped with a message). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Flush, then ignore further records. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = this.writeSome().finally(() => {
      this.writing = null;
      // After a failure only a new record tries again: a full disk is not hammered in a loop.
      if (!this.closed && (this.pending.length > 0 || (this.compactNext && !this.failed))) this.kick();
    });
  }

  private async writeSome(): Promise<void> {
    const lines = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      if (this.compactNext || this.size + bytes > this.base + this.opts.slackBytes) {
        this.compactNext = false;
        await this.compact();
      } else if (lines.length > 0) {
        await appendFile(this.path, lines.join(''), { mode: 0o600 });
        this.size += bytes;
      }
      if (this.failed) this.opts.log(`${this.path}: writing again`);
      this.failed = false;
    } catch (e) {
      if (!this.failed) this.opts.log(`${this.path}: records not written (${e instanceof Error ? e.message : String(e)}); kept in memory, retried at the next record`);
      this.failed = true;
      this.compactNext = true;
    }
  }

  /** The owner's whole state into FILE.tmp, synced, renamed over FILE. */
  private async compact(): Promise<void> {
    const text = this.opts.state().map((r) => `${JSON.stringify(r)}\n`).join('');
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    await rename(tmp, this.path);
    this.size = this.base = Buffer.byteLength(text);
  }
}

// A small QMP client: QEMU's JSON machine protocol over a Unix socket, one
// command at a time (the benchmark drives migrations through it). Events that
// arrive between replies are ignored.

import { connect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

type Reply = { return?: unknown; error?: { class: string; desc: string } };

export class Qmp {
  private buf = '';
  private waiting: ((r: Reply) => void) | null = null;
  private closedWhy: string | null = null;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        if ('return' in msg || 'error' in msg) {
          const w = this.waiting;
          this.waiting = null;
          w?.(msg as Reply);
        }
      }
    });
    const gone = (why: string) => {
      this.closedWhy ??= why;
      const w = this.waiting;
      this.waiting = null;
      w?.({ error: { class: 'Closed', desc: this.closedWhy } });
    };
    sock.on('error', (e) => gone(e.message));
    sock.on('close', () => gone('QMP connection closed'));
  }

  /** Connects to QEMU's `-qmp unix:PATH,server=on,wait=off` socket (retrying while QEMU starts) and leaves capabilities negotiation. */
  static async connect(path: string, timeoutMs: number): Promise<Qmp> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        const q = new Qmp(sock);
        await q.execute('qmp_capabilities');
        return q;
      } catch (e) {
        if (Date.now() > end) throw new Error(`cannot reach QEMU's QMP socket ${path}: ${(e as Error).message}`);
        await delay(50);
      }
    }
  }

  /** Runs one command; resolves with its return value, rejects with QEMU's error text. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedWhy) return Promise.reject(new Error(`QMP ${command}: ${this.closedWhy}`));
    if (this.waiting) return Promise.reject(new Error(`QMP ${command}: another command is running`));
    return new Promise((resolve, reject) => {
      this.waiting = (r) => (r.error ? reject(new Error(`QMP ${command}: ${r.error.desc}`)) : resolve(r.return as T));
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** The parts of QMP `query-migrate` the benchmark reads. */
export interface QemuMigrateInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: { transferred: number; total: number; duplicate: number; normal: number; 'dirty-sync-count': number; 'dirty-pages-rate'?: number };
  'cpu-throttle-percentage'?: number;
}

// The source side of a live migration, run by the VM's owner (the daemon): it
// connects to the destination daemon, sends guest memory in rounds while the
// guest runs, stops the guest when the rest fits the downtime limit, sends the
// rest and the device state, lets go of the disks and commits. Any failure
// before the destination confirms leaves the VM running here as before
// (docs/migration.md has the rules).

import { request } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { VmHandle } from '../vm-handle.js';
import { FramedSocket } from './framed-socket.js';
import {
  FrameType, MIGRATION_MAGIC, MIGRATION_VERSION, PAGE_SIZE, decodeJson, encodeJson, frameTypeName, type Frame,
} from './stream.js';
import { DISK_BLOCK } from './disk-blocks.js';

export const DEFAULT_DOWNTIME_LIMIT_MS = 300;
export const DEFAULT_TIMEOUT_S = 600;
/** Rounds before the guest is stopped whatever is left (QEMU and Cloud Hypervisor stop after a bounded number too). */
const MAX_ROUNDS = 30;
/** Auto-converge: first throttle step and each further step, percent (QEMU's defaults). */
const THROTTLE_INITIAL = 20;
const THROTTLE_STEP = 10;
const THROTTLE_MAX = 99;
/** Pages the worker copies out per command (16 MiB): a short pause of the guest each, few round trips. */
const TAKE_PAGES = 4096;
/** Disk blocks read per command (16 MiB). */
const TAKE_BLOCKS = 256;

export interface MigrationProgress {
  id: string;
  phase: 'connecting' | 'precopy' | 'stopped' | 'committing' | 'completed' | 'failed' | 'cancelled';
  round: number;
  bytesSent: number;
  pagesSent: number;
  /** --copy-storage: disk blocks (64 KiB) sent, all rounds. */
  blocksSent: number;
  /** Pages dirtied during the last round. */
  dirtyPages: number;
  /** Guest pages dirtied per second in the last round. */
  dirtyRate: number;
  /** Link bandwidth seen in the last round, bytes per second. */
  bandwidth: number;
  throttlePercent: number;
  startedAt: number;
  /** When each step ended, ms since the start (accepted, round0, ..., held, stateAcked, released, running): where the time goes. */
  steps: Record<string, number>;
  totalMs?: number;
  downtimeMs?: number;
  error?: string;
}

export interface MigrateOptions {
  handle: VmHandle;
  /** Destination daemon's base URL (http://host:port). */
  to: string;
  token: string;
  /**
   * What the destination is told: the VM's stored definition and the sizes of
   * its disks; with copyStorage, the images it is to make in its own images
   * directory (names relative to it, formats), which this migration fills.
   */
  hello: { name: string; memMiB: number; definition: unknown; diskSizes: number[]; copyStorage?: { disks: { name: string; format: 'raw' | 'qcow2' }[] } };
  downtimeLimitMs: number;
  timeoutMs: number;
  signal: AbortSignal;
  progress: MigrationProgress;
  /** Drop this daemon's image locks (after the worker closed the disks). */
  releaseLocks: () => void;
  /** Take them again (the VM goes on here); throws if someone else holds them. */
  retakeLocks: () => void;
  /** The VM runs at the destination: end it here (before the migration reports 'completed'). */
  finish: () => Promise<void>;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export function newProgress(): MigrationProgress {
  return {
    id: randomUUID(), phase: 'connecting', round: 0, bytesSent: 0, pagesSent: 0, blocksSent: 0, dirtyPages: 0, dirtyRate: 0, bandwidth: 0,
    throttlePercent: 0, startedAt: Date.now(), steps: {},
  };
}

/** Open the stream: an HTTP upgrade on the destination's API port, with its bearer token. */
export function connect(to: string, token: string, signal: AbortSignal): Promise<FramedSocket> {
  let url: URL;
  try {
    url = new URL('/v1/migrations/incoming', to);
  } catch {
    return Promise.reject(new MigrationError(`bad destination URL '${to}'`));
  }
  if (url.protocol !== 'http:') return Promise.reject(new MigrationError(`destination URL must be http://HOST:PORT, not ${url.protocol}`));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST', signal,
      headers: { connection: 'upgrade', upgrade: 'tsvisor-migration', authorization: `Bearer ${token}` },
    });
    req.on('upgrade', (_res, socket: Duplex, head: Buffer) => resolve(new FramedSocket(socket, head)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let msg = Buffer.concat(chunks).toString('utf8').slice(0, 500);
        try {
          msg = (JSON.parse(msg) as { error?: string }).error ?? msg;
        } catch {
          // not JSON: shown as is
        }
        reject(new MigrationError(`the destination refused the connection (${res.statusCode}): ${msg}`));
      });
    });
    req.on('error', (e) => reject(new MigrationError(`cannot reach the destination ${url.origin}: ${e.message}`)));
    req.end();
  });
}

function expect(f: Frame, type: number): Record<string, unknown> {
  if (f.type === FrameType.REFUSE || f.type === FrameType.FAILED) {
    const j = decodeJson(f);
    throw new MigrationError(`the destination refused: ${typeof j.error === 'string' ? j.error.slice(0, 1000) : 'no reason given'}`);
  }
  if (f.type !== type) throw new MigrationError(`protocol error: expected ${frameTypeName(type)}, got ${frameTypeName(f.type)}`);
  return decodeJson(f);
}

/** Run one migration to its end. Resolves on success (the VM runs at the destination); rejects with the VM running here again. */
export async function migrate(o: MigrateOptions): Promise<void> {
  const p = o.progress;
  const h = o.handle;
  let conn: FramedSocket | null = null;
  let begun = false;
  let held = false;
  let released = false;
  let committed = false;
  const onAbort = () => conn?.destroy();
  o.signal.addEventListener('abort', onAbort);
  const step = (name: string) => {
    p.steps[name] = Date.now() - p.startedAt;
  };
  const aborted = () => {
    if (o.signal.aborted) throw new MigrationError(String(o.signal.reason ?? 'cancelled'));
  };
  try {
    conn = await connect(o.to, o.token, o.signal);
    step('connected');
    aborted();
    await conn.send(encodeJson(FrameType.HELLO, { magic: MIGRATION_MAGIC, version: MIGRATION_VERSION, id: p.id, ...o.hello }));
    const accepted = expect(await conn.next(), FrameType.ACCEPT);
    step('accepted');
    const copyStorage = o.hello.copyStorage !== undefined;
    if (copyStorage && accepted.copyStorage !== true) throw new MigrationError('the destination does not copy storage (an older tsvisor?)');
    p.phase = 'precopy';
    await h.command({ type: 'migrateBegin', copyStorage });
    begun = true;
    let prevDirty = Infinity;
    let sentBytes = 0;
    let sentSeconds = 0;
    /**
     * Send every page queued in this round; returns pages dirtied meanwhile.
     * The next batch is asked for before the current one is written, so the
     * worker copies while the socket sends.
     */
    const sendQueued = async (first?: { frames: Uint8Array; pages: number }): Promise<number> => {
      const ask = () => h.command({ type: 'migrateTake', max: TAKE_PAGES });
      if (first && first.pages > 0) {
        const more = ask();
        more.catch(() => {});
        await conn!.send(first.frames);
        p.pagesSent += first.pages;
        p.bytesSent = conn!.bytesSent;
        return sendFrom(more, ask);
      }
      return sendFrom(ask(), ask);
    };
    const sendFrom = async (
      pending: Promise<{ frames: Uint8Array; pages: number; dirty: number }>,
      ask: () => Promise<{ frames: Uint8Array; pages: number; dirty: number }>,
    ): Promise<number> => {
      let next = pending;
      for (;;) {
        const r = await next;
        if (r.pages === 0) return r.dirty;
        aborted();
        next = ask();
        // A failure of the prefetched ask is seen when it is awaited; never unhandled meanwhile.
        next.catch(() => {});
        await conn!.send(r.frames);
        p.pagesSent += r.pages;
        p.bytesSent = conn!.bytesSent;
      }
    };
    /** --copy-storage: send every disk block queued in this round; returns the blocks written meanwhile. */
    const sendDiskQueued = async (): Promise<number> => {
      if (!copyStorage) return 0;
      const ask = () => h.command({ type: 'migrateDiskTake', max: TAKE_BLOCKS });
      let next = ask();
      for (;;) {
        const r = await next;
        if (r.blocks === 0) return r.dirty;
        aborted();
        next = ask();
        next.catch(() => {});
        await conn!.send(r.frames);
        p.blocksSent += r.blocks;
        p.bytesSent = conn!.bytesSent;
      }
    };
    for (;;) {
      const t0 = performance.now();
      const b0 = conn.bytesSent;
      const dirtyPages = await sendQueued();
      const dirtyBlocks = await sendDiskQueued();
      // In pages' worth of bytes: a disk block is sixteen pages.
      const dirty = dirtyPages + dirtyBlocks * (DISK_BLOCK / PAGE_SIZE);
      await conn.send(encodeJson(FrameType.ROUND, { round: p.round }));
      expect(await conn.next(), FrameType.ACK);
      step(`round${p.round}`);
      const s = Math.max(1e-3, (performance.now() - t0) / 1000);
      p.bandwidth = Math.max(1, (conn.bytesSent - b0) / s);
      p.dirtyPages = dirtyPages;
      p.dirtyRate = dirty / s;
      p.bytesSent = conn.bytesSent;
      sentBytes += conn.bytesSent - b0;
      sentSeconds += s;
      // The lower of this round's rate and the whole migration's: one fast round must not stop the guest too early.
      const rate = Math.min(p.bandwidth, sentBytes / sentSeconds);
      const expectedMs = ((dirty * (PAGE_SIZE + 4)) / rate) * 1000;
      if (expectedMs <= o.downtimeLimitMs || p.round + 1 >= MAX_ROUNDS) break;
      // Not converging: the guest dirties as fast as the link carries. Slow it down.
      if (p.round >= 1 && dirty >= prevDirty * 0.9 && p.throttlePercent < THROTTLE_MAX) {
        p.throttlePercent = p.throttlePercent === 0 ? THROTTLE_INITIAL : Math.min(THROTTLE_MAX, p.throttlePercent + THROTTLE_STEP);
        await h.command({ type: 'migrateThrottle', percent: p.throttlePercent });
      }
      prevDirty = dirty;
      p.round++;
      await h.command({ type: 'migrateNextRound' });
    }
    // Final pass: the guest stops once the worker takes the hold (between two slices).
    let downFrom = performance.now();
    aborted();
    p.phase = 'stopped';
    // The final round's first batch comes with the state: for an idle guest that is all of it.
    const fin = await h.command({ type: 'migrateHold', max: TAKE_PAGES });
    // The guest ran until the worker took the command: its pause starts there.
    if (Number.isFinite(fin.stoppedAt)) downFrom = Math.max(downFrom, Math.min(performance.now(), fin.stoppedAt - performance.timeOrigin));
    step('held');
    held = true;
    p.round++;
    if (fin.frames && fin.left === 0) {
      // All of the final round in one batch (an idle guest's): no more asks of the worker.
      if (fin.taken) await conn.send(fin.frames);
      p.pagesSent += fin.taken ?? 0;
      p.bytesSent = conn.bytesSent;
    } else {
      await sendQueued(fin.frames && fin.taken ? { frames: fin.frames, pages: fin.taken } : undefined);
    }
    await sendDiskQueued();
    await conn.send(encodeJson(FrameType.ROUND, { round: p.round, final: true }));
    await conn.send(encodeJson(FrameType.STATE, { machine: fin.machine, instret: fin.instret }));
    step('stateSent');
    // The worker flushes and closes the disks (nothing writes them any more) while the
    // destination applies the state; a failure before COMMIT reopens them (migrateResume).
    const closing = h.command({ type: 'migrateReleaseDisks' });
    closing.catch(() => {}); // awaited below; never unhandled meanwhile
    expect(await conn.next(), FrameType.ACK); // the last round's pages
    step('pagesAcked');
    expect(await conn.next(), FrameType.ACK); // the device state
    step('stateAcked');
    aborted();
    // This daemon's locks dropped once the disks are closed, before the destination opens them.
    p.phase = 'committing';
    await closing;
    o.releaseLocks();
    step('released');
    released = true;
    committed = true;
    await conn.send(encodeJson(FrameType.COMMIT, {}));
    expect(await conn.next(), FrameType.RUNNING);
    step('running');
    p.downtimeMs = performance.now() - downFrom;
    p.bytesSent = conn.bytesSent;
    void conn.close();
    await o.finish();
    p.phase = 'completed';
    p.totalMs = Date.now() - p.startedAt;
  } catch (e) {
    let err = e instanceof Error ? e : new Error(String(e));
    if (o.signal.aborted && !(err instanceof MigrationError)) err = new MigrationError(String(o.signal.reason ?? 'cancelled'));
    if (committed) {
      // The destination may have started the VM: ask it; resume here only if it did not.
      const there = await askDestination(o, p.id);
      if (there === 'running') {
        p.downtimeMs = undefined;
        conn?.destroy();
        await o.finish();
        p.phase = 'completed';
        p.totalMs = Date.now() - p.startedAt;
        conn?.destroy();
        return;
      }
      if (there === 'unknown') {
        p.phase = 'failed';
        p.error = `${err.message}; the destination cannot be asked whether the VM runs there, so it stays paused here (resume it only once sure it does not run there)`;
        conn?.destroy();
        throw new MigrationError(p.error);
      }
    } else if (conn && !conn.broken) {
      await conn.send(encodeJson(FrameType.CANCEL, { reason: err.message })).catch(() => {});
    }
    conn?.destroy();
    if (released) o.retakeLocks();
    if (begun || held) await h.command({ type: 'migrateResume' }).catch(() => {});
    p.phase = o.signal.aborted && /cancel/i.test(String(o.signal.reason)) ? 'cancelled' : 'failed';
    p.error = err.message;
    p.totalMs = Date.now() - p.startedAt;
    throw err;
  } finally {
    o.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * After COMMIT without RUNNING: does the VM run at the destination? The
 * destination answers 'running' or 'aborted' (and then never starts it);
 * 'unknown' when it cannot be reached at all but may still exist.
 */
async function askDestination(o: MigrateOptions, id: string): Promise<'running' | 'aborted' | 'unknown'> {
  const url = new URL(`/v1/migrations/incoming/${encodeURIComponent(id)}`, o.to);
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await new Promise<{ status: number; body: string } | { refused: boolean }>((resolve) => {
      const req = request(url, { method: 'GET', headers: { authorization: `Bearer ${o.token}` }, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve({ refused: false }));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ refused: e.code === 'ECONNREFUSED' }));
      req.end();
    });
    if ('status' in r) {
      if (r.status === 404) return 'aborted'; // never got as far as COMMIT there
      try {
        const state = (JSON.parse(r.body) as { state?: string }).state;
        if (state === 'running') return 'running';
        if (state === 'aborted') return 'aborted';
      } catch {
        // retried
      }
    } else if (r.refused) {
      // Nothing listens: the destination daemon is gone, and with it a VM it ran in its threads.
      return 'aborted';
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
  return 'unknown';
}

// A switch shared by VMs of several processes (`tsvisor run --net switch=NAME`
// in two terminals). The first process to use a switch name hosts it: it keeps
// the VirtualSwitch and listens on a Unix socket; the others join through that
// socket, one port each, sending frames as 2-byte length + frame. If the host
// process ends, a remaining member takes over the name and the rest reconnect.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_ETH_FRAME, countFromGuest, emptyCounters, type NetBackend, type NetCounters } from './backend.js';
import { namedSwitch, type SwitchPort } from './switch.js';
import { FrameReader, encodeFrame } from './frame-stream.js';

const RETRY_MS = 500;

export function switchSocketPath(name: string): string {
  const base = process.env.TSVISOR_RUNTIME_DIR ?? (process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'tsvisor') : join(tmpdir(), `tsvisor-${process.getuid?.() ?? 0}`));
  mkdirSync(base, { recursive: true, mode: 0o700 });
  return join(base, `switch-${name}.sock`);
}

/**
 * Bytes a switch socket may hold unsent. A member that stops reading (a VM
 * process stopped with SIGSTOP, a hostile peer) must not make the host
 * process buffer without limit: past this, frames to it are dropped, as a
 * real switch drops when an output queue is full.
 */
export const MAX_SOCKET_BACKLOG = 1024 * 1024;

/** Queue one frame on a switch socket; false (nothing queued) when its backlog is full. */
function writeFrame(s: Socket, frame: Uint8Array): boolean {
  if (s.writableLength + frame.length + 2 > MAX_SOCKET_BACKLOG) return false;
  s.write(encodeFrame(frame));
  return true;
}

/** Hosts switch `name` for other processes. */
const hubs = new Map<string, Server>();
/** The member sockets of each hub hosted here, and the frames dropped because a member did not read. */
const hubMembers = new Map<string, Set<Socket>>();
const hubDrops = new Map<string, number>();

/** For monitoring and tests: the largest unsent backlog of a hub's members, and frames dropped for backlog. */
export function hubBacklog(name: string): { maxQueuedBytes: number; droppedFrames: number } {
  let max = 0;
  for (const s of hubMembers.get(name) ?? []) max = Math.max(max, s.writableLength);
  return { maxQueuedBytes: max, droppedFrames: hubDrops.get(name) ?? 0 };
}

function listenHub(name: string, path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const sw = namedSwitch(name);
    const members = hubMembers.get(name) ?? new Set<Socket>();
    hubMembers.set(name, members);
    const server = createServer((sock) => {
      const port = sw.port(`remote:${sock.remoteAddress ?? 'unix'}`);
      const reader = new FrameReader((f) => port.fromGuest(f), MAX_ETH_FRAME);
      members.add(sock);
      port.start((f) => {
        if (!writeFrame(sock, f)) hubDrops.set(name, (hubDrops.get(name) ?? 0) + 1);
      });
      sock.on('data', (b) => {
        if (!reader.push(b)) sock.destroy();
      });
      sock.on('error', () => {});
      sock.on('close', () => {
        members.delete(sock);
        void port.close();
      });
    });
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      server.unref(); // the VMs, not the hub, keep the process alive
      resolve(server);
    });
  });
}

/** A NIC's link to a named switch, hosted here or in another process. */
export class SharedSwitchBackend implements NetBackend {
  readonly description: string;
  private toGuest: ((f: Uint8Array) => void) | null = null;
  private local: SwitchPort | null = null;
  private sock: Socket | null = null;
  private closed = false;
  private readonly c = emptyCounters();
  private retry: NodeJS.Timeout | null = null;

  constructor(readonly name: string, private readonly label: string) {
    this.description = `switch ${name}`;
  }

  start(toGuest: (frame: Uint8Array) => void): void {
    this.toGuest = toGuest;
    void this.attach();
  }

  /** Join the switch's host process, or become the host. */
  private async attach(): Promise<void> {
    if (this.closed) return;
    const path = switchSocketPath(this.name);
    if (hubs.has(this.name)) return this.attachLocal();
    const sock = await new Promise<Socket | null>((resolve) => {
      const s = connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(null));
    });
    if (this.closed) {
      sock?.destroy();
      return;
    }
    if (sock) {
      this.sock = sock;
      const reader = new FrameReader((f) => this.deliver(f), MAX_ETH_FRAME);
      sock.on('data', (b) => {
        if (!reader.push(b)) sock.destroy();
      });
      sock.on('error', () => {});
      sock.on('close', () => {
        this.sock = null;
        this.scheduleRetry();
      });
      return;
    }
    // Nobody hosts it (or a stale socket file is left from a process that died): take it over.
    try {
      unlinkSync(path);
    } catch {
      // not there
    }
    try {
      hubs.set(this.name, await listenHub(this.name, path));
    } catch {
      this.scheduleRetry(); // another process won the race: join it
      return;
    }
    this.attachLocal();
  }

  private attachLocal(): void {
    const port = namedSwitch(this.name).port(this.label);
    port.start((f) => this.deliver(f));
    this.local = port;
  }

  private scheduleRetry(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.attach();
    }, RETRY_MS);
  }

  private deliver(f: Uint8Array): void {
    if (!this.toGuest) return;
    this.c.txToGuestFrames++;
    this.c.txToGuestBytes += f.length;
    this.toGuest(f);
  }

  fromGuest(frame: Uint8Array): void {
    if (!countFromGuest(this.c, frame)) return;
    if (this.local) this.local.fromGuest(frame);
    else if (this.sock) {
      if (!writeFrame(this.sock, frame)) this.c.dropped++; // the hub is not reading: drop, never buffer without bound
    } else this.c.dropped++; // between hosts: the frame is lost, as on a real network
  }

  counters(): NetCounters {
    return { ...this.c };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.toGuest = null;
    if (this.retry) clearTimeout(this.retry);
    this.sock?.destroy();
    if (this.local) {
      await this.local.close();
      const sw = namedSwitch(this.name);
      const hub = hubs.get(this.name);
      if (hub && sw.portCount === 0) {
        hubs.delete(this.name);
        await new Promise((r) => hub.close(r));
      }
    }
  }
}

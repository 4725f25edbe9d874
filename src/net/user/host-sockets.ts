// HostApi on real Node sockets. Everything it opens is tracked so closeAll()
// leaves nothing that keeps the process alive.

import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseIp4 } from './addr.js';
import type { HostApi, HostServer, HostTcpSocket, HostUdpServer, HostUdpSocket, LookupResult, TcpSocketEvents, UdpEvents } from './host-api.js';

export class NodeHostApi implements HostApi {
  private readonly sockets = new Set<net.Socket>();
  private readonly servers = new Set<net.Server>();
  private readonly udps = new Set<dgram.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  tcpConnect(addr: string, port: number, events: TcpSocketEvents): HostTcpSocket {
    const s = net.connect({ host: addr, port, allowHalfOpen: true, noDelay: true });
    return this.wrap(s, events);
  }

  tcpListen(addr: string, port: number, accept: (s: HostTcpSocket) => void): Promise<HostServer> {
    return new Promise((resolve, reject) => {
      // Paused until the guest has accepted the forwarded connection.
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => {
        if (this.closed) {
          s.destroy();
          return;
        }
        accept(this.wrap(s, null));
      });
      server.once('error', (e) => reject(new Error(describeListenError(e))));
      server.listen(port, addr, () => {
        server.removeAllListeners('error');
        server.on('error', () => {});
        this.servers.add(server);
        const bound = server.address();
        resolve({
          port: typeof bound === 'object' && bound ? bound.port : port,
          close: () => {
            server.close();
            this.servers.delete(server);
          },
        });
      });
    });
  }

  udpOpen(events: UdpEvents): HostUdpSocket {
    const s = dgram.createSocket('udp4');
    return this.wrapUdp(s, events);
  }

  udpBind(addr: string, port: number, events: UdpEvents): Promise<HostUdpServer> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.once('error', (e) => {
        s.close();
        reject(new Error(describeListenError(e)));
      });
      s.bind(port, addr, () => {
        s.removeAllListeners('error');
        const w = this.wrapUdp(s, events);
        resolve({ port: s.address().port, send: w.send, close: w.close });
      });
    });
  }

  dnsServers(): string[] {
    try {
      return dns.getServers();
    } catch {
      return [];
    }
  }

  localAddresses(): number[] {
    const out: number[] = [];
    try {
      for (const list of Object.values(networkInterfaces())) {
        for (const a of list ?? []) {
          // Node 18.0-18.3 reported the family as a number.
          if (a.family !== 'IPv4' && (a.family as unknown) !== 4) continue;
          const ip = parseIp4(a.address);
          if (ip !== null) out.push(ip);
        }
      }
    } catch {
      // No interface list: only the loopback block counts as the host.
    }
    return out;
  }

  async lookup(name: string, family: 4 | 6): Promise<LookupResult> {
    try {
      const r = await dns.promises.lookup(name, { family, all: true });
      return { ok: true, addresses: r.map((x) => x.address) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENODATA') return { ok: true, addresses: [] };
      return { ok: false, notFound: code === 'ENOTFOUND' };
    }
  }

  setTimer(fn: () => void, ms: number): unknown {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  clearTimer(t: unknown): void {
    clearTimeout(t as NodeJS.Timeout);
    this.timers.delete(t as NodeJS.Timeout);
  }

  now(): number {
    return performance.now();
  }

  closeAll(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const s of this.servers) s.close();
    this.servers.clear();
    for (const u of this.udps) closeQuietly(u);
    this.udps.clear();
  }

  private wrap(s: net.Socket, initial: TcpSocketEvents | null): HostTcpSocket {
    let ev = initial;
    let corked = false;
    this.sockets.add(s);
    s.on('connect', () => ev?.connect());
    s.on('data', (d: Buffer) => ev?.data(d));
    s.on('end', () => ev?.end());
    s.on('drain', () => ev?.drain());
    s.on('error', () => ev?.error());
    s.on('close', () => {
      this.sockets.delete(s);
      ev?.close();
    });
    return {
      // Copies: the guest frame the bytes come from is reused after the call.
      write: (d) => {
        if (s.destroyed || s.writableEnded) return;
        // Segments from one burst of guest frames leave in one writev.
        if (!corked) {
          corked = true;
          s.cork();
          queueMicrotask(() => {
            corked = false;
            s.uncork();
          });
        }
        s.write(Buffer.from(d));
      },
      pendingBytes: () => s.writableLength,
      end: () => {
        if (!s.destroyed) s.end();
      },
      reset: () => {
        ev = null;
        if (s.destroyed) return;
        // A socket still connecting, or whose write side is already shut down,
        // cannot send a RST (libuv refuses, and Node then never finishes closing it).
        if (s.connecting || s.writableEnded) {
          s.destroy();
          return;
        }
        try {
          s.resetAndDestroy();
        } catch {
          s.destroy();
        }
      },
      destroy: () => {
        ev = null;
        s.destroy();
      },
      pause: () => s.pause(),
      resume: () => s.resume(),
      listen: (e) => {
        ev = e;
      },
    };
  }

  private wrapUdp(s: dgram.Socket, events: UdpEvents): HostUdpSocket {
    this.udps.add(s);
    let open = true;
    s.on('message', (msg, rinfo) => {
      if (open) events.message(msg, rinfo.address, rinfo.port);
    });
    s.on('error', () => {}); // ICMP errors and the like; the guest times out as on a real network
    return {
      send: (d, port, addr) => {
        if (open) s.send(Buffer.from(d), port, addr, () => {});
      },
      close: () => {
        if (!open) return;
        open = false;
        this.udps.delete(s);
        closeQuietly(s);
      },
    };
  }
}

function closeQuietly(s: dgram.Socket): void {
  try {
    s.close();
  } catch {
    // already closed
  }
}

function describeListenError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    case 'EACCES':
      return 'permission denied';
    default:
      return err.message ?? String(e);
  }
}

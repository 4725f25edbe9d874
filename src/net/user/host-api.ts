// What the stack needs from the host, as interfaces: the core modules stay free
// of Node APIs, and host-sockets.ts implements this with real sockets.

import type { TcpHost } from './tcp.js';

export interface TcpSocketEvents {
  connect(): void;
  data(data: Uint8Array): void;
  /** The peer finished sending (the socket stays writable: half-close). */
  end(): void;
  drain(): void;
  error(): void;
  close(): void;
}

export interface HostTcpSocket extends TcpHost {
  /** Sets who receives this socket's events (accepted sockets get them late). */
  listen(events: TcpSocketEvents): void;
}

export interface HostServer {
  readonly port: number;
  close(): void;
}

export interface UdpEvents {
  message(data: Uint8Array, addr: string, port: number): void;
}

export interface HostUdpSocket {
  send(data: Uint8Array, port: number, addr: string): void;
  close(): void;
}

export interface HostUdpServer extends HostUdpSocket {
  readonly port: number;
}

export type LookupResult = { ok: true; addresses: string[] } | { ok: false; notFound: boolean };

export interface HostApi {
  tcpConnect(addr: string, port: number, events: TcpSocketEvents): HostTcpSocket;
  /** Rejects with a readable Error when the address cannot be bound. */
  tcpListen(addr: string, port: number, accept: (s: HostTcpSocket) => void): Promise<HostServer>;
  udpOpen(events: UdpEvents): HostUdpSocket;
  udpBind(addr: string, port: number, events: UdpEvents): Promise<HostUdpServer>;
  /** The host's configured DNS resolvers, as "addr" or "addr:port" / "[v6]:port". */
  dnsServers(): string[];
  /** The host's own IPv4 interface addresses. */
  localAddresses(): number[];
  /** getaddrinfo, so the hosts file counts. */
  lookup(name: string, family: 4 | 6): Promise<LookupResult>;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(t: unknown): void;
  now(): number;
}

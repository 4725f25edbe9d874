// Host-to-guest port forwards (QEMU's hostfwd). TCP: each connection accepted
// on the host becomes a connection from the gateway address to the guest. UDP:
// each host peer gets its own gateway port, so the guest's replies find their way
// back; peers idle longer than the UDP timeout are forgotten.

import { ip4ToString, type Ip4 } from './addr.js';
import type { HostApi, HostServer, HostUdpServer } from './host-api.js';
import type { ResolvedFwd } from './options.js';
import { MAX_UDP_PAYLOAD, type Output } from './output.js';
import type { TcpNat } from './tcp-nat.js';

interface UdpPeer {
  rule: ResolvedFwd;
  server: HostUdpServer;
  addr: string;
  port: number;
  gwPort: number;
  last: number;
}

const UDP_FWD_PORT_FIRST = 40000;
const UDP_FWD_PORT_LAST = 49151;

export class HostFwd {
  private readonly tcpServers: { rule: ResolvedFwd; server: HostServer }[] = [];
  private readonly udpServers: { rule: ResolvedFwd; server: HostUdpServer }[] = [];
  private readonly peers = new Map<string, UdpPeer>();
  private readonly byGwPort = new Map<number, UdpPeer>();
  private nextGwPort = UDP_FWD_PORT_FIRST;
  private sweepTimer: unknown = null;
  private closed = false;

  constructor(
    private readonly api: HostApi,
    private readonly rules: readonly ResolvedFwd[],
    private readonly gateway: Ip4,
    private readonly tcp: TcpNat,
    private readonly out: Output,
    private readonly idleMs: number,
  ) {}

  /** Opens every listener; on the first failure closes the others and rejects with a readable error. */
  async listen(): Promise<void> {
    for (const rule of this.rules) {
      try {
        if (rule.proto === 'tcp') {
          const server = await this.api.tcpListen(rule.hostAddr, rule.hostPort, (s) => this.tcp.forward(s, this.gateway, rule.guestIp, rule.guestPort));
          this.tcpServers.push({ rule, server });
        } else {
          const server: HostUdpServer = await this.api.udpBind(rule.hostAddr, rule.hostPort, {
            message: (data, addr, port) => this.fromHostUdp(rule, server, data, addr, port),
          });
          this.udpServers.push({ rule, server });
        }
      } catch (e) {
        this.close();
        const why = e instanceof Error ? e.message : String(e);
        throw new Error(`--net user: hostfwd ${rule.proto}:${rule.hostAddr}:${rule.hostPort}-${ip4ToString(rule.guestIp)}:${rule.guestPort}: ${why}`);
      }
      if (this.closed) return;
    }
  }

  /** The ports actually bound, in rule order (a rule with host port 0 gets a free one). */
  ports(): { proto: 'tcp' | 'udp'; hostAddr: string; port: number; guestPort: number }[] {
    const all = [...this.tcpServers, ...this.udpServers];
    return this.rules.flatMap((rule) => {
      const s = all.find((x) => x.rule === rule);
      return s ? [{ proto: rule.proto, hostAddr: rule.hostAddr, port: s.server.port, guestPort: rule.guestPort }] : [];
    });
  }

  /** A guest datagram to the gateway: true when it answers a forwarded peer. */
  fromGuestUdp(src: Ip4, srcPort: number, dstPort: number, payload: Uint8Array): boolean {
    const p = this.byGwPort.get(dstPort);
    if (!p || p.rule.guestIp !== src || p.rule.guestPort !== srcPort) return false;
    p.last = this.api.now();
    p.server.send(payload, p.port, p.addr);
    return true;
  }

  close(): void {
    this.closed = true;
    for (const s of this.tcpServers) s.server.close();
    for (const s of this.udpServers) s.server.close();
    this.tcpServers.length = 0;
    this.udpServers.length = 0;
    this.peers.clear();
    this.byGwPort.clear();
    if (this.sweepTimer !== null) this.api.clearTimer(this.sweepTimer);
    this.sweepTimer = null;
  }

  private fromHostUdp(rule: ResolvedFwd, server: HostUdpServer, data: Uint8Array, addr: string, port: number): void {
    if (this.closed || data.length > MAX_UDP_PAYLOAD) return;
    const key = `${rule.hostAddr}:${server.port}<${addr}:${port}`;
    let p = this.peers.get(key);
    if (!p) {
      const gwPort = this.allocGwPort();
      if (gwPort === null) return;
      p = { rule, server, addr, port, gwPort, last: 0 };
      this.peers.set(key, p);
      this.byGwPort.set(gwPort, p);
      this.armSweep();
    }
    p.last = this.api.now();
    this.out.sendUdp(this.gateway, rule.guestIp, p.gwPort, rule.guestPort, data);
  }

  private allocGwPort(): number | null {
    for (let i = 0; i <= UDP_FWD_PORT_LAST - UDP_FWD_PORT_FIRST; i++) {
      const port = this.nextGwPort;
      this.nextGwPort = port >= UDP_FWD_PORT_LAST ? UDP_FWD_PORT_FIRST : port + 1;
      if (!this.byGwPort.has(port)) return port;
    }
    return null;
  }

  private armSweep(): void {
    if (this.sweepTimer !== null) return;
    this.sweepTimer = this.api.setTimer(() => {
      this.sweepTimer = null;
      const now = this.api.now();
      for (const [key, p] of [...this.peers]) {
        if (now - p.last >= this.idleMs) {
          this.peers.delete(key);
          this.byGwPort.delete(p.gwPort);
        }
      }
      if (this.peers.size > 0) this.armSweep();
    }, Math.max(100, this.idleMs / 4));
  }
}

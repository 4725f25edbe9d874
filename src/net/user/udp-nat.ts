// Guest UDP flows: one host socket per (guest address and port, destination),
// closed after it has been idle for a while. Only datagrams from the flow's
// destination are relayed back, as through a NAT.

import type { Ip4 } from './addr.js';
import type { HostApi, HostUdpSocket } from './host-api.js';
import { MAX_UDP_PAYLOAD, type Output } from './output.js';

interface Flow {
  key: string;
  guestIp: Ip4;
  guestPort: number;
  remoteIp: Ip4;
  remotePort: number;
  hostAddr: string;
  sock: HostUdpSocket;
  last: number;
}

const MAX_FLOWS = 1024;

export class UdpNat {
  private readonly flows = new Map<string, Flow>();
  private sweepTimer: unknown = null;

  constructor(
    private readonly api: HostApi,
    private readonly out: Output,
    private readonly idleMs: number,
    private readonly drop: (reason: string) => void,
  ) {}

  get size(): number {
    return this.flows.size;
  }

  send(guestIp: Ip4, guestPort: number, remoteIp: Ip4, remotePort: number, hostAddr: string, payload: Uint8Array): void {
    const key = `${guestIp}:${guestPort}>${remoteIp}:${remotePort}`;
    let f = this.flows.get(key);
    if (!f) {
      if (this.flows.size >= MAX_FLOWS) {
        this.drop('udp-table-full');
        return;
      }
      const sock = this.api.udpOpen({
        // Runs later, from the event loop, once `flow` exists.
        message: (data, addr, port) => {
          if (addr !== flow.hostAddr || port !== flow.remotePort || this.flows.get(key) !== flow) return;
          flow.last = this.api.now();
          if (data.length > MAX_UDP_PAYLOAD) return; // would need IP fragmentation toward the guest
          this.out.sendUdp(flow.remoteIp, flow.guestIp, flow.remotePort, flow.guestPort, data);
        },
      });
      const flow: Flow = { key, guestIp, guestPort, remoteIp, remotePort, hostAddr, sock, last: 0 };
      this.flows.set(key, flow);
      f = flow;
      this.armSweep();
    }
    f.last = this.api.now();
    f.sock.send(payload, remotePort, hostAddr);
  }

  close(): void {
    for (const f of this.flows.values()) f.sock.close();
    this.flows.clear();
    if (this.sweepTimer !== null) this.api.clearTimer(this.sweepTimer);
    this.sweepTimer = null;
  }

  private armSweep(): void {
    if (this.sweepTimer !== null) return;
    this.sweepTimer = this.api.setTimer(() => {
      this.sweepTimer = null;
      const now = this.api.now();
      for (const f of [...this.flows.values()]) {
        if (now - f.last >= this.idleMs) {
          f.sock.close();
          this.flows.delete(f.key);
        }
      }
      if (this.flows.size > 0) this.armSweep();
    }, Math.max(100, this.idleMs / 4));
  }
}

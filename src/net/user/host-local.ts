// Addresses that lead to the host itself: the loopback block, 0.0.0.0/8 (which
// Linux connects to the loopback) and the host's interface addresses. A guest
// dialing the host's LAN address must meet the same rules as one dialing the
// gateway.

import type { Ip4 } from './addr.js';
import type { HostApi } from './host-api.js';

/** Interfaces change rarely; asking the host once a second bounds the cost per new flow. */
const REFRESH_MS = 1000;

export class HostLocalAddresses {
  private addrs = new Set<Ip4>();
  private at = -Infinity;

  constructor(private readonly api: HostApi) {}

  has(ip: Ip4): boolean {
    const top = ip >>> 24;
    if (top === 127 || top === 0) return true;
    const now = this.api.now();
    if (now - this.at >= REFRESH_MS) {
      this.addrs = new Set(this.api.localAddresses());
      this.at = now;
    }
    return this.addrs.has(ip);
  }
}

// Outbound destinations the guest may reach, as CIDR blocks. No list means
// everything the host can reach.

import { inCidr, type Cidr, type Ip4 } from './addr.js';

export class AllowList {
  constructor(private readonly cidrs: readonly Cidr[] | null) {}

  allows(ip: Ip4): boolean {
    if (this.cidrs === null) return true;
    for (const c of this.cidrs) if (inCidr(ip, c)) return true;
    return false;
  }
}

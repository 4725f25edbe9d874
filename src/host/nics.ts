// The NICs of a daemon VM: its API config (nics[] in the create body) as --net
// specs, checked at creation so a bad hostfwd is a 400, not a failed start.

import type { NicSpec } from '../net/nic-spec.js';
import { parseNetSpec } from '../net/nic-spec.js';
import { parseUserNetOptions } from '../net/user/options.js';
import { hostAccessOf, policyViolation, type NetPolicy } from './net-policy.js';
import type { CreateVmRequest, DiskLimits, NicApiLimits } from './types.js';
import { perSecond, type RateLimits } from '../devices/rate-limiter.js';
import type { NicLimits } from '../devices/virtio/net.js';

/** API disk limits as the device's token buckets ({} = none). */
export function diskRateLimits(l: DiskLimits | undefined): RateLimits {
  const out: RateLimits = {};
  if (l?.bps) out.bandwidth = perSecond(l.bps, l.bpsBurst);
  if (l?.iops) out.ops = perSecond(l.iops, l.iopsBurst);
  return out;
}

/** API NIC limits as the device's token buckets per direction. */
export function nicRateLimits(l: NicApiLimits | undefined): NicLimits {
  const dir = (bps?: number, pps?: number): RateLimits => ({ ...(bps ? { bandwidth: perSecond(bps) } : {}), ...(pps ? { ops: perSecond(pps) } : {}) });
  return { tx: dir(l?.txBps, l?.txPps), rx: dir(l?.rxBps, l?.rxPps) };
}

type NicConfig = NonNullable<CreateVmRequest['nics']>[number];

/** The --net text for one API NIC. */
function specText(n: NicConfig): string {
  const extra: string[] = [];
  if (n.mac) extra.push(`mac=${n.mac}`);
  if (n.mode === 'user') {
    for (const h of n.hostfwd ?? []) extra.push(`hostfwd=${h}`);
    for (const g of n.guestfwd ?? []) extra.push(`guestfwd=${g}`);
    if (n.hostLoopback !== undefined) extra.push(`host-loopback=${n.hostLoopback ? 'on' : 'off'}`);
    if (n.allow?.length) extra.push(`allow=${n.allow.join(',')}`);
    return ['user', ...extra].join(',');
  }
  if (n.mode === 'switch') return [`switch=${n.switch ?? ''}`, ...extra].join(',');
  return ['tap', `ifname=${n.tap ?? ''}`, ...extra].join(',');
}

/**
 * The specs, or the first problem as "nics[i]...: why" with its HTTP status
 * (403 when the daemon's network policy forbids it). With a policy, user NICs
 * carry it to their backend, which enforces it on every connection and bind.
 */
export function nicSpecs(config: CreateVmRequest, policy?: NetPolicy): { ok: true; specs: NicSpec[] } | { ok: false; error: string; status: number } {
  const specs: NicSpec[] = [];
  for (const [i, n] of (config.nics ?? []).entries()) {
    if (n.mode === 'switch' && !n.switch) return { ok: false, status: 400, error: `nics[${i}].switch: a switch NIC needs the switch's name` };
    if (n.mode === 'tap' && !n.tap) return { ok: false, status: 400, error: `nics[${i}].tap: a TAP NIC needs the device's name` };
    if (n.mode !== 'user' && (n.hostfwd || n.guestfwd || n.allow || n.hostLoopback !== undefined)) {
      return { ok: false, status: 400, error: `nics[${i}]: hostfwd, guestfwd, allow and hostLoopback are options of user NICs` };
    }
    const text = specText(n);
    const r = parseNetSpec(text);
    if (!r.ok) return { ok: false, status: 400, error: `nics[${i}]: ${r.error.slice(`--net ${text}: `.length)}` };
    if (!r.spec) continue;
    if (r.spec.mode === 'user') {
      const u = parseUserNetOptions(r.spec.params);
      if (!u.ok) return { ok: false, status: 400, error: `nics[${i}]: ${u.error.replace(/^--net user: /, '')}` };
      if (policy) {
        const why = policyViolation(policy, u.options, `nics[${i}]`);
        if (why) return { ok: false, status: 403, error: why };
        r.spec.hostAccess = hostAccessOf(policy);
      }
    }
    if (n.limits) r.spec.limits = nicRateLimits(n.limits);
    specs.push(r.spec);
  }
  return { ok: true, specs };
}

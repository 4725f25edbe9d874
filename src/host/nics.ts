// The NICs of a daemon VM: its API config (nics[] in the create body) as --net
// specs, checked at creation so a bad hostfwd is a 400, not a failed start.

import type { NicSpec } from '../net/nic-spec.js';
import { parseNetSpec } from '../net/nic-spec.js';
import { parseUserNetOptions } from '../net/user/options.js';
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
    if (n.allow?.length) extra.push(`allow=${n.allow.join(',')}`);
    return ['user', ...extra].join(',');
  }
  if (n.mode === 'switch') return [`switch=${n.switch ?? ''}`, ...extra].join(',');
  return ['tap', `ifname=${n.tap ?? ''}`, ...extra].join(',');
}

/** The specs, or the first problem as "nics[i]...: why". */
export function nicSpecs(config: CreateVmRequest): { ok: true; specs: NicSpec[] } | { ok: false; error: string } {
  const specs: NicSpec[] = [];
  for (const [i, n] of (config.nics ?? []).entries()) {
    if (n.mode === 'switch' && !n.switch) return { ok: false, error: `nics[${i}].switch: a switch NIC needs the switch's name` };
    if (n.mode === 'tap' && !n.tap) return { ok: false, error: `nics[${i}].tap: a TAP NIC needs the device's name` };
    const text = specText(n);
    const r = parseNetSpec(text);
    if (!r.ok) return { ok: false, error: `nics[${i}]: ${r.error.slice(`--net ${text}: `.length)}` };
    if (!r.spec) continue;
    if (r.spec.mode === 'user') {
      const u = parseUserNetOptions(r.spec.params);
      if (!u.ok) return { ok: false, error: `nics[${i}]: ${u.error.replace(/^--net user: /, '')}` };
    }
    if (n.limits) r.spec.limits = nicRateLimits(n.limits);
    specs.push(r.spec);
  }
  return { ok: true, specs };
}

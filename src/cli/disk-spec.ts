// `--disk PATH[,format=..][,readonly=..][,serial=..][,bps=..]...`: shared by
// `tsvisor run` and the daemon client's `create`.

import { parseSize } from '../common/size.js';
import { perSecond, type RateLimits } from '../devices/rate-limiter.js';
import { UsageError } from './args.js';

/** One --disk option. */
export interface DiskSpec {
  path: string;
  format?: 'raw' | 'qcow2';
  readOnly: boolean;
  serial?: string;
  /** From bps=, iops=, bps_burst=, iops_burst= (per second buckets). */
  limits?: RateLimits;
}

/** A positive whole number of bytes (size suffixes allowed) or of operations (plain digits). */
function parseRate(key: string, val: string, bytes: boolean): number {
  const n = bytes ? parseSize(val) : /^\d+$/.test(val) ? Number(val) : null;
  if (n === null || !Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`bad --disk ${key} value '${val}' (${bytes ? 'a size like 10M' : 'a whole number'} greater than 0)`);
  }
  return n;
}

/** Largest number of disks (8 virtio-mmio slots, less the entropy source and hvc0). */
export const MAX_DISKS = 6;

/** Parse `PATH[,format=raw|qcow2][,readonly=on|off][,serial=S]` (",," stands for a comma in PATH). */
export function parseDiskSpec(spec: string): DiskSpec {
  const parts: string[] = [''];
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] === ',' && spec[i + 1] === ',' && parts.length === 1) {
      parts[0] += ',';
      i++;
    } else if (spec[i] === ',') parts.push('');
    else parts[parts.length - 1] += spec[i];
  }
  const [path, ...opts] = parts;
  if (path === '') throw new UsageError(`--disk needs a file name (got '${spec}')`);
  const d: DiskSpec = { path, readOnly: false };
  const seen = new Set<string>();
  const rates: Partial<Record<'bps' | 'iops' | 'bps_burst' | 'iops_burst', number>> = {};
  for (const o of opts) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new UsageError(`bad --disk option '${o}' (expected format=, readonly= or serial=)`);
    const key = o.slice(0, eq);
    const val = o.slice(eq + 1);
    if (seen.has(key)) throw new UsageError(`--disk option '${key}' given twice`);
    seen.add(key);
    switch (key) {
      case 'format':
        if (val !== 'raw' && val !== 'qcow2') throw new UsageError(`unknown disk format '${val}' (raw or qcow2)`);
        d.format = val;
        break;
      case 'readonly':
        if (val === 'on') d.readOnly = true;
        else if (val === 'off') d.readOnly = false;
        else throw new UsageError(`bad --disk readonly value '${val}' (on or off)`);
        break;
      case 'serial':
        if (!/^[\x20-\x7e]{0,20}$/.test(val)) throw new UsageError(`bad --disk serial '${val}' (at most 20 printable ASCII characters)`);
        d.serial = val;
        break;
      case 'bps':
      case 'bps_burst':
      case 'iops':
      case 'iops_burst':
        rates[key] = parseRate(key, val, key.startsWith('bps'));
        break;
      default:
        throw new UsageError(`unknown --disk option '${key}' (format, readonly, serial, bps, iops, bps_burst or iops_burst)`);
    }
  }
  if (rates.bps_burst !== undefined && rates.bps === undefined) throw new UsageError('--disk bps_burst needs bps');
  if (rates.iops_burst !== undefined && rates.iops === undefined) throw new UsageError('--disk iops_burst needs iops');
  if (rates.bps !== undefined || rates.iops !== undefined) {
    d.limits = {};
    if (rates.bps !== undefined) d.limits.bandwidth = perSecond(rates.bps, rates.bps_burst);
    if (rates.iops !== undefined) d.limits.ops = perSecond(rates.iops, rates.iops_burst);
  }
  return d;
}

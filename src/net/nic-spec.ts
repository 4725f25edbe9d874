// The --net option (and a NIC in a daemon VM config): which backend a NIC uses.
//   user[,hostfwd=...][,guestfwd=...][,host-loopback=on][,allow=...][,mac=...]
//                                              user-mode NAT (no privileges)
//   switch=NAME[,mac=...]                      a virtual switch shared with other VMs
//   tap,ifname=NAME[,mac=...]                  an existing TAP device (Linux)
//   none                                       no NIC

import { parseMac } from './mac.js';
import { parseSize } from '../common/size.js';
import { perSecond } from '../devices/rate-limiter.js';
import type { NicLimits } from '../devices/virtio/net.js';
import type { HostAccess } from './user/host-access.js';

/** Rate-limit options any backend takes: bytes (sizes like 10M) or frames per second, each direction. */
const LIMIT_KEYS = ['tx_bps', 'rx_bps', 'tx_pps', 'rx_pps'] as const;

interface NicCommon {
  mac?: Uint8Array;
  limits?: NicLimits;
}

export type NicSpec =
  | (NicCommon & { mode: 'user'; params: string[]; /** set by the daemon's policy */ hostAccess?: HostAccess })
  | (NicCommon & { mode: 'switch'; name: string })
  | (NicCommon & { mode: 'tap'; ifname: string });

export type NetSpecResult = { ok: true; spec: NicSpec | null } | { ok: false; error: string };

const SWITCH_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function parseNetSpec(text: string): NetSpecResult {
  const bad = (why: string): NetSpecResult => ({ ok: false, error: `--net ${text}: ${why}` });
  const items = text.split(',');
  let head = items[0];
  let rest = items.slice(1);
  if (head === 'none') return rest.length ? bad('"none" takes no options') : { ok: true, spec: null };
  let switchName: string | undefined;
  if (head.startsWith('switch=')) {
    switchName = head.slice('switch='.length);
    head = 'switch';
  } else if (head.includes('=') || head === '') {
    // Options alone: user-mode networking is the default backend.
    rest = items;
    head = 'user';
  }
  let mac: Uint8Array | undefined;
  let limits: NicLimits | undefined;
  const others: string[] = [];
  for (const item of rest) {
    if (item === '') continue;
    const key = item.slice(0, item.indexOf('='));
    if ((LIMIT_KEYS as readonly string[]).includes(key)) {
      const v = parseSize(item.slice(key.length + 1));
      if (v === null || v <= 0) return bad(`bad ${key} "${item.slice(key.length + 1)}" (a positive number; sizes like 10M for bytes)`);
      limits ??= {};
      const dir = key.startsWith('tx') ? 'tx' : 'rx';
      limits[dir] = { ...limits[dir], [key.endsWith('bps') ? 'bandwidth' : 'ops']: perSecond(v) };
      continue;
    }
    if (item.startsWith('mac=')) {
      if (mac) return bad('mac given twice');
      const m = parseMac(item.slice(4));
      if (!m) return bad(`bad mac "${item.slice(4)}" (expected six hex bytes like 52:54:00:12:34:56, not multicast)`);
      mac = m;
    } else others.push(item);
  }
  switch (head) {
    case 'user':
      return { ok: true, spec: { mode: 'user', mac, limits, params: others } };
    case 'switch': {
      for (const o of others) {
        if (o.startsWith('name=') && switchName === undefined) switchName = o.slice(5);
        else return bad(`unknown switch option "${o}" (name, mac)`);
      }
      if (!switchName || !SWITCH_NAME.test(switchName)) return bad('a switch needs a name of letters, digits, "_", "." or "-"');
      return { ok: true, spec: { mode: 'switch', mac, limits, name: switchName } };
    }
    case 'tap': {
      let ifname: string | undefined;
      for (const o of others) {
        if (o.startsWith('ifname=') && ifname === undefined) ifname = o.slice(7);
        else return bad(`unknown tap option "${o}" (ifname, mac)`);
      }
      if (!ifname || !/^[A-Za-z0-9_.:-]{1,15}$/.test(ifname)) return bad('tap needs ifname=NAME (at most 15 characters)');
      return { ok: true, spec: { mode: 'tap', mac, limits, ifname } };
    }
    default:
      return bad(`unknown network backend "${head}" (user, switch=NAME, tap or none)`);
  }
}

// A one-client DHCP server (RFC 2131/2132): the guest always gets the same
// address, so there is no lease table; tsvisor has one NIC per backend.

import { readIp4, writeIp4, type Ip4 } from './addr.js';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
const COOKIE = 0x63825363;
const BOOTP_LEN = 236;

const DISCOVER = 1, OFFER = 2, REQUEST = 3, DECLINE = 4, ACK = 5, NAK = 6, RELEASE = 7, INFORM = 8;

export interface DhcpConfig {
  server: Ip4;
  clientIp: Ip4;
  mask: Ip4;
  router: Ip4;
  dns: Ip4;
  leaseSecs: number;
}

export interface DhcpReply {
  payload: Uint8Array;
  /** IP destination; the Ethernet destination is `mac` (broadcast or the client's). */
  dst: Ip4;
  broadcast: boolean;
  chaddr: Uint8Array;
}

/** Handles one BOOTREQUEST in b[off, off+len); a string is a drop reason, null means nothing to answer. */
export function handleDhcp(b: Uint8Array, off: number, len: number, cfg: DhcpConfig): DhcpReply | string | null {
  if (len < BOOTP_LEN + 4) return 'dhcp-truncated';
  if (b[off] !== 1 || b[off + 1] !== 1 || b[off + 2] !== 6) return 'dhcp-unsupported';
  if (readIp4(b, off + BOOTP_LEN) !== COOKIE) return 'dhcp-unsupported';
  let type = 0;
  let requested = 0;
  let serverId = 0;
  for (let i = off + BOOTP_LEN + 4, end = off + len; i < end; ) {
    const code = b[i];
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    if (i + 1 >= end || i + 2 + b[i + 1] > end) return 'dhcp-bad-option';
    const olen = b[i + 1];
    if (code === 53 && olen === 1) type = b[i + 2];
    else if (code === 50 && olen === 4) requested = readIp4(b, i + 2);
    else if (code === 54 && olen === 4) serverId = readIp4(b, i + 2);
    i += 2 + olen;
  }
  if (readIp4(b, off + 24) !== 0) return null; // relayed: not on our link
  const ciaddr = readIp4(b, off + 12);
  let replyType: number;
  switch (type) {
    case DISCOVER:
      replyType = OFFER;
      break;
    case REQUEST:
      if (serverId !== 0 && serverId !== cfg.server) return null; // the client chose another server
      replyType = (requested || ciaddr) === cfg.clientIp ? ACK : NAK;
      break;
    case INFORM:
      replyType = ACK;
      break;
    case DECLINE:
    case RELEASE:
      return null;
    default:
      return 'dhcp-unsupported';
  }
  const out = new Uint8Array(300);
  out[0] = 2;
  out[1] = 1;
  out[2] = 6;
  out.set(b.subarray(off + 4, off + 8), 4); // xid
  out.set(b.subarray(off + 10, off + 12), 10); // flags
  out.set(b.subarray(off + 28, off + 44), 28); // chaddr
  const inform = type === INFORM;
  if (inform) writeIp4(out, 12, ciaddr);
  if (replyType !== NAK && !inform) writeIp4(out, 16, cfg.clientIp);
  writeIp4(out, 20, cfg.server);
  writeIp4(out, BOOTP_LEN, COOKIE);
  let p = BOOTP_LEN + 4;
  const opt = (code: number, bytes: number[]) => {
    out[p++] = code;
    out[p++] = bytes.length;
    for (const x of bytes) out[p++] = x;
  };
  const ip = (v: Ip4) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  opt(53, [replyType]);
  opt(54, ip(cfg.server));
  if (replyType !== NAK) {
    if (!inform) opt(51, ip(cfg.leaseSecs >>> 0));
    opt(1, ip(cfg.mask));
    opt(3, ip(cfg.router));
    opt(6, ip(cfg.dns));
  }
  out[p++] = 255;
  const broadcastFlag = (b[off + 10] & 0x80) !== 0;
  const chaddr = out.slice(28, 34);
  if (replyType === NAK) return { payload: out, dst: 0xffffffff, broadcast: true, chaddr };
  if (ciaddr !== 0) return { payload: out, dst: ciaddr, broadcast: false, chaddr };
  if (broadcastFlag) return { payload: out, dst: 0xffffffff, broadcast: true, chaddr };
  return { payload: out, dst: cfg.clientIp, broadcast: false, chaddr };
}

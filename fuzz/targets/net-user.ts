// The user-mode network stack fed frames as a guest would send them: Ethernet,
// ARP, IPv4, ICMP, UDP (DHCP, DNS, relayed datagrams) and TCP (handshakes and
// data through the NAT). Only loopback is reachable: the allow-list admits
// 127.0.0.0/8 alone, the DNS upstream is a loopback responder (and its timeout
// so long that the getaddrinfo fallback never runs within one input), and
// loopback echo servers give TCP and UDP to the gateway a live peer.
import { createServer, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { getBugDetectorConfiguration } from '@jazzer.js/bug-detectors';
import { UserNet } from '../../src/net/user/user-net.js';
import { Bytes } from '../lib/bytes.js';
import { check } from '../lib/expect.js';
import { fixIpv4Frame } from '../lib/frames.js';

const GW_MAC = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

// Under Jazzer, its SSRF detector reports every socket connect and send as a
// finding unless permitted: permit loopback (every port, since the guest picks
// them) and nothing else, so a connection leaving the machine is a finding.
interface SsrfConfig {
  addPermittedTCPConnection(host: string, port: number): SsrfConfig;
  addPermittedUDPConnection(host: string, port: number): SsrfConfig;
}
const ssrf = getBugDetectorConfiguration('ssrf') as SsrfConfig | undefined;
for (let port = 0; ssrf && port <= 0xffff; port++) ssrf.addPermittedTCPConnection('127.0.0.1', port).addPermittedUDPConnection('127.0.0.1', port);

// Loopback peers, started once per process.
const sockets = new Set<Socket>();
const tcpEcho = createServer((s) => {
  sockets.add(s);
  s.on('data', (d) => s.write(d));
  s.on('error', () => {});
  s.on('close', () => sockets.delete(s));
});
const udpEcho = createSocket('udp4');
udpEcho.on('message', (m, r) => udpEcho.send(m, r.port, r.address));
// Answers every query with its own bytes marked as a response (NXDOMAIN).
const dns = createSocket('udp4');
dns.on('message', (m, r) => {
  if (m.length >= 12) {
    m[2] |= 0x80;
    m[3] = (m[3] & 0xf0) | 3;
  }
  dns.send(m, r.port, r.address);
});
const ready = Promise.all([
  new Promise<void>((r) => tcpEcho.listen(0, '127.0.0.1', r)),
  new Promise<void>((r) => udpEcho.bind(0, '127.0.0.1', r)),
  new Promise<void>((r) => dns.bind(0, '127.0.0.1', r)),
]);
tcpEcho.unref();
udpEcho.unref();
dns.unref();

const turn = () => new Promise<void>((r) => setImmediate(r));

type Internal = { handleFrame(f: Uint8Array): void };

export async function fuzz(data: Buffer): Promise<void> {
  await ready;
  const tcpPort = (tcpEcho.address() as { port: number }).port;
  const udpPort = udpEcho.address().port;
  const net = new UserNet({ allow: ['127.0.0.0/8'], dnsServer: `127.0.0.1:${dns.address().port}`, dnsTimeoutMs: 600_000 });
  const toGuest: Uint8Array[] = [];
  net.start((f) => {
    check(f.length >= 14 && f.length <= 1518, `frame to the guest of ${f.length} bytes`);
    toGuest.push(f.slice());
  });
  const b = new Bytes(data);
  try {
    let frames = 0;
    while (!b.done && frames++ < 32) {
      const flags = b.u8();
      const f = b.chunk(1600).slice();
      // Flags steer the frame past the checks random bytes would fail.
      if (flags & 1 && f.length >= 12) {
        f.set(GW_MAC, 0);
        f.set(GUEST_MAC, 6);
      }
      if (flags & 2 && f.length >= 38 && f[12] === 0x08 && f[13] === 0 && (f[23] === 6 || f[23] === 17)) {
        const l4 = 14 + (f[14] & 0x0f) * 4;
        const port = f[23] === 6 ? tcpPort : udpPort;
        if (l4 + 4 <= f.length) {
          f[l4 + 2] = port >>> 8;
          f[l4 + 3] = port & 0xff;
        }
      }
      fixIpv4Frame(f, (flags & 4) !== 0, (flags & 8) !== 0);
      // The private entry point: fromGuest() would swallow (and count) an exception.
      (net as unknown as Internal).handleFrame(f);
      if (flags & 16) await turn();
    }
    await turn();
    const reasons = net.dropReasons();
    check(reasons['internal-error'] === undefined, 'internal-error drop');
  } finally {
    await net.close();
  }
}

// The user-mode network backend's own services: ARP, ICMP echo, DHCP, DNS and
// UDP relaying, driven with raw frames; every host socket is on 127.0.0.1.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { UserNet } from '../src/net/user/user-net.js';
import {
  FakeGuest, GUEST_IP, GUEST_MAC, GW_IP, GW_MAC, DNS_IP, arpRequest, icmpEcho, dhcpFrame, parseDhcpOptions, dnsQuery,
  parseDnsResponse, udpFrame, ip, ipStr,
} from './lib/net-frames.js';

async function withNet(opts: ConstructorParameters<typeof UserNet>[0], body: (net: UserNet, g: FakeGuest) => Promise<void>): Promise<void> {
  // Some tests reach servers on the host's loopback through the gateway.
  const net = new UserNet({ hostLoopback: true, ...opts });
  const g = new FakeGuest(net);
  try {
    await body(net, g);
    assert.equal(g.badChecksums, 0, 'every frame from the stack has correct checksums');
  } finally {
    g.close();
    await net.close();
  }
}

function udpServer(onMessage: (s: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo) => void): Promise<{ sock: dgram.Socket; port: number }> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.on('message', (m, r) => onMessage(sock, m, r));
    sock.bind(0, '127.0.0.1', () => resolve({ sock, port: sock.address().port }));
  });
}

describe('ARP and ICMP', () => {
  test('ARP for the gateway and the DNS address is answered with the gateway MAC', () =>
    withNet({ dnsServer: [] }, async (net, g) => {
      for (const target of [GW_IP, DNS_IP]) {
        g.send(arpRequest(target));
        const r = await g.waitFor((p) => p.arp?.op === 2 && p.arp.senderIp === target, 1000, 'ARP reply');
        assert.deepEqual(r.arp!.senderMac, GW_MAC);
        assert.deepEqual(r.dstMac, GUEST_MAC);
        assert.equal(r.arp!.targetIp, GUEST_IP);
      }
      g.send(arpRequest(ip('10.0.2.99')));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(g.frames.filter((p) => p.arp).length, 0, 'no answer for an address tsvisor does not own');
      assert.equal(net.counters().dropped, 0);
    }));

  test('ICMP echo to the gateway is answered with a correct checksum', () =>
    withNet({ dnsServer: [] }, async (net, g) => {
      const data = new TextEncoder().encode('ping payload 0123456789abcdef0123456789abcdef!');
      g.send(icmpEcho(GW_IP, 0x1234, 7, data));
      const r = await g.waitFor((p) => p.icmp !== undefined, 1000, 'echo reply');
      assert.equal(r.icmp!.type, 0);
      assert.ok(r.icmp!.ok, 'ICMP checksum');
      assert.ok(r.ip!.headerOk, 'IP header checksum');
      assert.equal(r.icmp!.id, 0x1234);
      assert.equal(r.icmp!.seq, 7);
      assert.deepEqual(r.icmp!.data, data);
      assert.equal(r.ip!.src, GW_IP);
      assert.equal(r.ip!.dst, GUEST_IP);
      const c = net.counters();
      assert.equal(c.rxFromGuestFrames, 1);
      assert.equal(c.txToGuestFrames, 1);
      g.send(icmpEcho(ip('192.0.2.1'), 1, 1, data));
      assert.equal(net.dropReasons()['icmp-unsupported'], 1, 'echo elsewhere is dropped and counted');
    }));
});

describe('DHCP', () => {
  test('DISCOVER, OFFER, REQUEST, ACK give 10.0.2.15, the mask, router and DNS', () =>
    withNet({ dnsServer: [] }, async (_net, g) => {
      g.send(dhcpFrame(1, { xid: 0xabcd0001, broadcast: true }));
      const offer = await g.waitFor((p) => p.udp?.dport === 68, 1000, 'OFFER');
      assert.deepEqual(offer.dstMac, Uint8Array.from([255, 255, 255, 255, 255, 255]), 'broadcast as the flag asks');
      assert.equal(offer.ip!.dst, 0xffffffff);
      assert.equal(offer.ip!.src, GW_IP);
      assert.equal(offer.udp!.sport, 67);
      const op = offer.udp!.payload;
      assert.equal(op[0], 2);
      assert.equal(new DataView(op.buffer, op.byteOffset).getUint32(4), 0xabcd0001);
      assert.equal(ipStr(new DataView(op.buffer, op.byteOffset).getUint32(16)), '10.0.2.15');
      const oo = parseDhcpOptions(op);
      assert.deepEqual([...oo.get(53)!], [2]);
      assert.deepEqual([...oo.get(54)!], [10, 0, 2, 2]);

      g.send(dhcpFrame(3, { xid: 0xabcd0002, requested: ip('10.0.2.15'), serverId: GW_IP }));
      const ack = await g.waitFor((p) => p.udp?.dport === 68, 1000, 'ACK');
      assert.deepEqual(ack.dstMac, GUEST_MAC, 'unicast to the client without the broadcast flag');
      assert.equal(ack.ip!.dst, GUEST_IP);
      const ao = parseDhcpOptions(ack.udp!.payload);
      assert.deepEqual([...ao.get(53)!], [5]);
      assert.deepEqual([...ao.get(1)!], [255, 255, 255, 0]);
      assert.deepEqual([...ao.get(3)!], [10, 0, 2, 2]);
      assert.deepEqual([...ao.get(6)!], [10, 0, 2, 3]);
      assert.deepEqual([...ao.get(54)!], [10, 0, 2, 2]);
      assert.equal(new DataView(ao.get(51)!.buffer, ao.get(51)!.byteOffset).getUint32(0), 86400);
      assert.equal(ipStr(new DataView(ack.udp!.payload.buffer, ack.udp!.payload.byteOffset).getUint32(16)), '10.0.2.15');

      g.send(dhcpFrame(3, { xid: 3, requested: ip('10.0.2.77'), broadcast: true }));
      const nak = await g.waitFor((p) => p.udp?.dport === 68, 1000, 'NAK');
      assert.deepEqual([...parseDhcpOptions(nak.udp!.payload).get(53)!], [6]);

      // Renewal from the bound address is answered to it; RELEASE is accepted silently.
      g.send(dhcpFrame(3, { xid: 4, ciaddr: GUEST_IP }));
      const renew = await g.waitFor((p) => p.udp?.dport === 68, 1000, 'renew ACK');
      assert.equal(renew.ip!.dst, GUEST_IP);
      g.send(dhcpFrame(8, { xid: 5, ciaddr: GUEST_IP }));
      const inform = await g.waitFor((p) => p.udp?.dport === 68, 1000, 'INFORM ACK');
      assert.deepEqual([...parseDhcpOptions(inform.udp!.payload).get(53)!], [5]);
      assert.equal(parseDhcpOptions(inform.udp!.payload).get(51), undefined, 'no lease for INFORM');
      g.send(dhcpFrame(7, { xid: 6, ciaddr: GUEST_IP }));
    }));

  test('net= moves every address', () =>
    withNet({ net: '10.0.3.0/24', dnsServer: [] }, async (_net, g) => {
      g.send(dhcpFrame(1, { xid: 9, broadcast: true }));
      const offer = await g.waitFor((p) => p.udp?.dport === 68, 1000, 'OFFER');
      const o = parseDhcpOptions(offer.udp!.payload);
      assert.equal(ipStr(new DataView(offer.udp!.payload.buffer, offer.udp!.payload.byteOffset).getUint32(16)), '10.0.3.15');
      assert.deepEqual([...o.get(3)!], [10, 0, 3, 2]);
      assert.deepEqual([...o.get(6)!], [10, 0, 3, 3]);
    }));
});

describe('DNS', () => {
  test('a query to 10.0.2.3 is relayed to the upstream resolver and answered', async () => {
    const upstream = await udpServer((sock, msg, rinfo) => {
      // Answers made-up.tsvisor.test with 10.9.8.7, anything else NXDOMAIN.
      const nameEnd = msg.indexOf(0, 12);
      const name = msg.subarray(12, nameEnd).toString('latin1');
      const found = name.includes('made-up') && name.includes('tsvisor');
      const q = msg.subarray(0, nameEnd + 5);
      const ans = found ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 9, 8, 7]) : Buffer.alloc(0);
      const out = Buffer.concat([q, ans]);
      out[2] = 0x81;
      out[3] = found ? 0x80 : 0x83;
      out.writeUInt16BE(found ? 1 : 0, 6);
      sock.send(out, rinfo.port, rinfo.address);
    });
    try {
      await withNet({ dnsServer: `127.0.0.1:${upstream.port}` }, async (_net, g) => {
        g.send(udpFrame(GUEST_IP, DNS_IP, 40000, 53, dnsQuery(0x4242, 'made-up.tsvisor.test', 1)));
        const r = await g.waitFor((p) => p.udp?.dport === 40000, 2000, 'DNS answer');
        assert.equal(r.ip!.src, DNS_IP);
        assert.equal(r.udp!.sport, 53);
        const a = parseDnsResponse(r.udp!.payload);
        assert.equal(a.id, 0x4242);
        assert.equal(a.rcode, 0);
        assert.deepEqual([...a.answers[0].data], [10, 9, 8, 7]);

        g.send(udpFrame(GUEST_IP, DNS_IP, 40001, 53, dnsQuery(7, 'nothing.tsvisor.test', 1)));
        const nx = await g.waitFor((p) => p.udp?.dport === 40001, 2000, 'NXDOMAIN');
        assert.equal(parseDnsResponse(nx.udp!.payload).rcode, 3);
      });
    } finally {
      upstream.sock.close();
    }
  });

  test('without an upstream, A and AAAA come from getaddrinfo (localhost) and unknown names get NXDOMAIN', () =>
    withNet({ dnsServer: [] }, async (_net, g) => {
      g.send(udpFrame(GUEST_IP, DNS_IP, 40002, 53, dnsQuery(1, 'localhost', 1)));
      const r = await g.waitFor((p) => p.udp?.dport === 40002, 3000, 'localhost A');
      const a = parseDnsResponse(r.udp!.payload);
      assert.equal(a.id, 1);
      assert.equal(a.rcode, 0);
      assert.ok(a.answers.some((x) => x.type === 1 && x.data.join('.') === '127.0.0.1'), 'localhost is 127.0.0.1');

      g.send(udpFrame(GUEST_IP, DNS_IP, 40003, 53, dnsQuery(2, 'no-such-name.invalid', 1)));
      const nx = await g.waitFor((p) => p.udp?.dport === 40003, 5000, 'NXDOMAIN');
      assert.equal(parseDnsResponse(nx.udp!.payload).rcode, 3);
    }));

  test('an upstream that does not answer falls back to getaddrinfo', async () => {
    const silent = await udpServer(() => {});
    try {
      await withNet({ dnsServer: `127.0.0.1:${silent.port}`, dnsTimeoutMs: 200 }, async (_net, g) => {
        g.send(udpFrame(GUEST_IP, DNS_IP, 40004, 53, dnsQuery(3, 'localhost', 1)));
        const r = await g.waitFor((p) => p.udp?.dport === 40004, 3000, 'fallback answer');
        assert.ok(parseDnsResponse(r.udp!.payload).answers.some((x) => x.data.join('.') === '127.0.0.1'));
      });
    } finally {
      silent.sock.close();
    }
  });
});

describe('UDP', () => {
  test('a datagram to the gateway reaches the host loopback and the reply comes back', async () => {
    const echo = await udpServer((sock, msg, rinfo) => sock.send(Buffer.concat([Buffer.from('re:'), msg]), rinfo.port, rinfo.address));
    try {
      await withNet({ dnsServer: [] }, async (net, g) => {
        g.send(udpFrame(GUEST_IP, GW_IP, 5555, echo.port, new TextEncoder().encode('hello')));
        const r = await g.waitFor((p) => p.udp?.dport === 5555, 2000, 'UDP reply');
        assert.equal(Buffer.from(r.udp!.payload).toString(), 're:hello');
        assert.equal(r.ip!.src, GW_IP);
        assert.equal(r.udp!.sport, echo.port);
        assert.equal(net.connections().udp, 1);
      });
    } finally {
      echo.sock.close();
    }
  });

  test('idle flows are closed', async () => {
    const echo = await udpServer((sock, msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    try {
      await withNet({ dnsServer: [], udpIdleMs: 200 }, async (net, g) => {
        g.send(udpFrame(GUEST_IP, GW_IP, 5556, echo.port, new Uint8Array([1])));
        await g.waitFor((p) => p.udp?.dport === 5556, 2000, 'UDP reply');
        assert.equal(net.connections().udp, 1);
        await new Promise((r) => setTimeout(r, 600));
        assert.equal(net.connections().udp, 0);
      });
    } finally {
      echo.sock.close();
    }
  });

  test('a destination outside the allow-list is dropped and counted', () =>
    withNet({ dnsServer: [], allow: ['10.255.0.0/16'] }, async (net, g) => {
      g.send(udpFrame(GUEST_IP, GW_IP, 5557, 9, new Uint8Array([1])));
      assert.equal(net.dropReasons()['udp-denied'], 1);
      assert.equal(net.counters().dropped, 1);
      assert.equal(net.connections().udp, 0);
    }));
});

// Hostile and malformed frames: fromGuest never throws, malformed frames are
// dropped and counted by reason, and the stack keeps answering afterwards.
// Property tests with fast-check over random bytes and mutated valid frames.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { UserNet } from '../src/net/user/user-net.js';
import { onesSum, finish } from '../src/common/checksum.js';
import {
  FakeGuest, GuestTcp, GUEST_IP, GUEST_MAC, GW_IP, GW_MAC, DNS_IP, arpRequest, icmpEcho, dhcpFrame, dnsQuery, udpFrame, tcpFrame, eth, ipv4, udp,
  cksum, TCP_SYN, TCP_FIN, TCP_RST, TCP_ACK, TCP_PSH,
} from './lib/net-frames.js';

// Only loopback is reachable, and only ports nobody listens on are used, so a
// mutated frame that happens to be valid cannot reach anything.
const SAFE = { dnsServer: [] as string[], allow: ['127.0.0.1/32'], hostLoopback: true };

async function stillAnswers(g: FakeGuest): Promise<void> {
  assert.equal((g.backend as UserNet).dropReasons()['internal-error'], undefined, 'no exception inside the stack');
  g.frames.length = 0;
  g.send(arpRequest(GW_IP));
  await g.waitFor((p) => p.arp?.op === 2 && p.arp.senderIp === GW_IP, 1000, 'ARP reply after the hostile frames');
  g.send(icmpEcho(GW_IP, 99, 1, new Uint8Array([1, 2, 3])));
  const r = await g.waitFor((p) => p.icmp?.type === 0 && p.icmp.id === 99, 1000, 'echo reply after the hostile frames');
  assert.ok(r.icmp!.ok);
}

function validFrames(): Uint8Array[] {
  return [
    arpRequest(GW_IP),
    icmpEcho(GW_IP, 1, 2, new Uint8Array(40).fill(7)),
    dhcpFrame(1, { xid: 1, broadcast: true }),
    udpFrame(GUEST_IP, DNS_IP, 1234, 53, dnsQuery(5, 'localhost', 1)),
    udpFrame(GUEST_IP, GW_IP, 1234, 9, new Uint8Array([1, 2, 3])),
    tcpFrame({ src: GUEST_IP, dst: GW_IP, sport: 40000, dport: 9, seq: 1, ack: 0, flags: TCP_SYN, mss: 1460 }),
    tcpFrame({ src: GUEST_IP, dst: GW_IP, sport: 40001, dport: 9, seq: 1, ack: 5, flags: TCP_ACK | TCP_PSH, payload: new Uint8Array(100).fill(3) }),
  ];
}

describe('hostile frames', () => {
  test('checksum: the fast path agrees with a plain byte loop at every alignment', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(7), fc.nat(0xffff), (bytes, shift, acc) => {
        const buf = new Uint8Array(bytes.length + 8);
        buf.set(bytes, shift);
        const view = buf.subarray(shift, shift + bytes.length);
        const fast = finish(onesSum(view, 0, view.length, acc));
        let s = acc;
        for (let i = 0; i < bytes.length; i++) s += i % 2 === 0 ? bytes[i] << 8 : bytes[i];
        while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
        assert.equal(fast, ~s & 0xffff);
      }),
      { numRuns: 500 },
    );
  });

  test('specific malformed frames are dropped with their reason', async () => {
    const net = new UserNet(SAFE);
    const g = new FakeGuest(net);
    try {
      const ipHdr = (over: (p: Uint8Array) => void, recompute = true) => {
        const p = ipv4(GUEST_IP, GW_IP, 17, udp(GUEST_IP, GW_IP, 1, 9, new Uint8Array(4)));
        over(p);
        if (recompute) {
          p[10] = p[11] = 0;
          const h = (p[0] & 15) * 4;
          const c = cksum([p.subarray(0, h)]);
          p[10] = c >> 8;
          p[11] = c & 255;
        }
        return eth(GW_MAC, GUEST_MAC, 0x0800, p);
      };
      const tcpOdd = (flags: number) => tcpFrame({ src: GUEST_IP, dst: GW_IP, sport: 40000, dport: 9, seq: 1, ack: 0, flags });
      const cases: [string, Uint8Array][] = [
        ['eth-truncated', new Uint8Array(10)],
        ['oversized', eth(GW_MAC, GUEST_MAC, 0x0800, new Uint8Array(1600))],
        ['ethertype', eth(GW_MAC, GUEST_MAC, 0x86dd, new Uint8Array(60))],
        ['eth-not-for-us', eth(Uint8Array.from([2, 0, 0, 0, 0, 1]), GUEST_MAC, 0x0800, new Uint8Array(60))],
        ['eth-bad-source', eth(GW_MAC, Uint8Array.from([1, 0, 0x5e, 0, 0, 1]), 0x0800, new Uint8Array(60))],
        ['arp-truncated', arpRequest(GW_IP).subarray(0, 30)],
        ['ip-truncated', ipHdr(() => {}).subarray(0, 25)],
        ['ip-checksum', ipHdr((p) => { p[10] ^= 1; }, false)],
        ['ip-version', ipHdr((p) => { p[0] = 0x65; })],
        ['ip-bad-header-length', ipHdr((p) => { p[0] = 0x44; })],
        ['ip-options', ipv4OptionsFrame()],
        ['ip-bad-length', ipHdr((p) => { p[2] = 0x10; })],
        ['ip-fragment', ipHdr((p) => { p[6] = 0x20; })],
        ['ip-fragment', ipHdr((p) => { p[7] = 0x08; })],
        ['ip-protocol', ipHdr((p) => { p[9] = 47; })],
        ['udp-checksum', (() => { const f = udpFrame(GUEST_IP, GW_IP, 1, 9, new Uint8Array([1, 2])); f[f.length - 1] ^= 0xff; return f; })()],
        ['tcp-checksum', (() => { const f = tcpOdd(TCP_SYN); f[f.length - 1] ^= 0xff; return f; })()],
        ['tcp-flags', tcpOdd(TCP_SYN | TCP_FIN)],
        ['tcp-flags', tcpOdd(TCP_SYN | TCP_RST)],
        ['tcp-flags', tcpOdd(0)],
        ['tcp-flags', tcpOdd(TCP_FIN)],
        ['tcp-flags', tcpOdd(TCP_PSH)],
        ['tcp-truncated', (() => {
          const t = new Uint8Array(12);
          return eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(GUEST_IP, GW_IP, 6, t));
        })()],
      ];
      for (const [reason, frame] of cases) {
        const before = net.dropReasons()[reason] ?? 0;
        const dropped = net.counters().dropped;
        assert.doesNotThrow(() => net.fromGuest(frame));
        assert.equal(net.dropReasons()[reason], before + 1, `${reason} counted`);
        assert.equal(net.counters().dropped, dropped + 1, `${reason} counted in dropped`);
      }
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(g.frames.length, 0, 'no answer to any of them');
      assert.equal(net.connections().tcp, 0);
      await stillAnswers(g);
    } finally {
      g.close();
      await net.close();
    }
  });

  test('random bytes never throw and are counted as dropped', async () => {
    const net = new UserNet(SAFE);
    const g = new FakeGuest(net);
    try {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 1600 }), (bytes) => {
          const before = net.counters().dropped;
          net.fromGuest(bytes);
          // Random bytes addressed to us with a valid IPv4 checksum are too unlikely to matter.
          assert.equal(net.counters().dropped, before + 1);
        }),
        { numRuns: 2000 },
      );
      await stillAnswers(g);
    } finally {
      g.close();
      await net.close();
    }
  });

  test('mutated valid frames (truncated, bytes changed, bad lengths, flags) never throw; damage to headers is dropped', async () => {
    const net = new UserNet(SAFE);
    const g = new FakeGuest(net);
    const frames = validFrames();
    try {
      fc.assert(
        fc.property(
          fc.nat(frames.length - 1),
          fc.oneof(
            fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(2000) }),
            fc.record({ kind: fc.constant('byte' as const), at: fc.nat(2000), value: fc.integer({ min: 1, max: 255 }) }),
            fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 200 }) }),
          ),
          (which, m) => {
            const base = frames[which];
            let f: Uint8Array;
            let mustDrop = false;
            if (m.kind === 'truncate') {
              const at = m.at % base.length;
              f = base.slice(0, at);
              // Cut inside the headers or the IP datagram: always malformed.
              mustDrop = true;
            } else if (m.kind === 'byte') {
              const at = m.at % base.length;
              f = base.slice();
              f[at] ^= m.value;
              const isTcp = base[23] === 6 && base[12] === 8 && base[13] === 0;
              // The IP header is covered by its checksum; a TCP segment always by its own.
              mustDrop = (at >= 14 && at < 34 && base[13] === 0) || (isTcp && at >= 14);
            } else {
              f = new Uint8Array(base.length + m.extra.length);
              f.set(base);
              f.set(m.extra, base.length);
              // Bytes after the IP datagram are Ethernet padding: still valid unless oversized.
              mustDrop = f.length > 1518;
            }
            const before = net.counters().dropped;
            assert.doesNotThrow(() => net.fromGuest(f));
            if (mustDrop) assert.equal(net.counters().dropped, before + 1, `${m.kind} of frame ${which} at ${'at' in m ? m.at % base.length : ''} must be dropped (${JSON.stringify(net.dropReasons())})`);
          },
        ),
        { numRuns: 3000 },
      );
      await stillAnswers(g);
    } finally {
      g.close();
      await net.close();
    }
  });
});

describe('hostile TCP peers', () => {
  test('random segments with valid checksums against live connections never break the stack', async () => {
    let accepted = 0;
    const sockets: net.Socket[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      accepted++;
      sockets.push(s);
      s.on('error', () => {});
      s.on('data', () => {});
      s.write(Buffer.alloc(3000, 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    const n = new UserNet({ dnsServer: [], allow: ['127.0.0.1/32'], hostLoopback: true, tcp: { rtoMs: 20, maxRtoMs: 40, maxRetries: 2 } });
    const g = new FakeGuest(n);
    try {
      const conns: GuestTcp[] = [];
      for (let i = 0; i < 4; i++) {
        const c = new GuestTcp(g, 45000 + i, GW_IP, port);
        assert.equal(await c.connect(), 'established');
        c.stopTimers();
        conns.push(c);
      }
      const flagSets = [TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK | TCP_FIN, TCP_RST, TCP_RST | TCP_ACK, TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK | TCP_PSH | TCP_FIN];
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              conn: fc.nat(3),
              flags: fc.constantFrom(...flagSets),
              seqDelta: fc.oneof(fc.integer({ min: -70000, max: 70000 }), fc.constant(0), fc.nat(0x7fffffff)),
              ackDelta: fc.oneof(fc.integer({ min: -70000, max: 70000 }), fc.constant(0), fc.nat(0x7fffffff)),
              window: fc.oneof(fc.constant(0), fc.nat(0xffff)),
              mss: fc.oneof(fc.constant(0), fc.nat(0xffff)),
              payload: fc.uint8Array({ maxLength: 1460 }),
            }),
            { maxLength: 30 },
          ),
          async (segs) => {
            for (const s of segs) {
              const c = conns[s.conn];
              n.fromGuest(tcpFrame({
                src: GUEST_IP, dst: GW_IP, sport: c.localPort, dport: port,
                seq: (c.sndNxt + s.seqDelta) >>> 0, ack: (c.rcvNxt + s.ackDelta) >>> 0,
                flags: s.flags, window: s.window, mss: s.mss || undefined, payload: s.payload,
              }));
            }
            await new Promise((r) => setImmediate(r));
          },
        ),
        { numRuns: 150 },
      );
      await new Promise((r) => setTimeout(r, 300));
      await stillAnswers(g);
      // The table holds only what is alive; dead ones were cleaned up by RSTs and timeouts.
      assert.ok(n.connections().tcp <= accepted);
    } finally {
      g.close();
      await n.close();
      for (const s of sockets) s.destroy(); // half-open server sockets would keep close() waiting
      await new Promise((r) => server.close(r));
    }
  });
});

function ipv4OptionsFrame(): Uint8Array {
  const p = ipv4(GUEST_IP, GW_IP, 17, udp(GUEST_IP, GW_IP, 1, 9, new Uint8Array(4)), { options: new Uint8Array([1, 1, 1, 0]) });
  return eth(GW_MAC, GUEST_MAC, 0x0800, p);
}

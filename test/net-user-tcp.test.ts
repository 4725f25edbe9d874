// Guest TCP through the user-mode backend against real loopback servers: bulk
// transfers both ways with both close orders, lost frames toward the guest,
// refusals, the allow-list, and host-to-guest port forwards.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { UserNet } from '../src/net/user/user-net.js';
import type { UserNetOptions } from '../src/net/user/options.js';
import { FakeGuest, GuestTcp, GW_IP, GUEST_IP, TCP_ACK, TCP_FIN, DNS_IP, arpRequest, dnsQuery, udpFrame, type GuestTcpOpts } from './lib/net-frames.js';

const MiB = 1024 * 1024;

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

interface Server {
  port: number;
  accepted: number;
  sockets: net.Socket[];
  close(): Promise<void>;
}

function startServer(onConn: (s: net.Socket) => void): Promise<Server> {
  return new Promise((resolve) => {
    const sockets: net.Socket[] = [];
    const srv: Server = { port: 0, accepted: 0, sockets, close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }) };
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      srv.accepted++;
      sockets.push(s);
      s.on('error', () => {});
      onConn(s);
    });
    server.listen(0, '127.0.0.1', () => {
      srv.port = (server.address() as net.AddressInfo).port;
      resolve(srv);
    });
  });
}

// These tests talk to servers on the host's loopback through the gateway, so host-loopback is on.
async function withNet(opts: UserNetOptions, body: (n: UserNet, g: FakeGuest) => Promise<void>): Promise<void> {
  const n = new UserNet({ dnsServer: [], hostLoopback: true, ...opts });
  const g = new FakeGuest(n);
  try {
    await body(n, g);
    assert.equal(g.badChecksums, 0, 'every frame from the stack has correct checksums');
  } finally {
    g.close();
    await n.close();
  }
}

let nextPort = 33000;
function guestConn(g: FakeGuest, port: number, opts: GuestTcpOpts = {}): GuestTcp {
  return new GuestTcp(g, nextPort++, GW_IP, port, opts);
}

describe('outbound TCP', () => {
  test('1 MiB each way; the guest closes first and the host keeps sending (half-close)', async () => {
    const upload = pattern(MiB, 1);
    const download = pattern(MiB, 2);
    let serverGot = '';
    const srv = await startServer((s) => {
      const parts: Buffer[] = [];
      s.on('data', (d) => parts.push(d));
      s.on('end', () => {
        serverGot = sha(Buffer.concat(parts));
        s.end(download); // after the guest's FIN, the host still sends 1 MiB
      });
    });
    try {
      await withNet({}, async (n, g) => {
        const c = guestConn(g, srv.port);
        assert.equal(await c.connect(), 'established');
        assert.equal(c.peerMss, 1460, 'the stack offers MSS 1460');
        c.write(upload);
        c.shutdown();
        await c.until(() => c.finReceived && c.finAcked, 20000, 'transfer and both FINs');
        assert.equal(serverGot, sha(upload));
        assert.equal(c.receivedBytes, MiB);
        assert.equal(sha(c.data()), sha(download));
        await waitFor(() => n.connections().tcp === 0, 5000, 'connection table empty after linger');
      }).catch((e) => { throw e; });
    } finally {
      await srv.close();
    }
  });

  test('the host closes first while the guest is still sending; frames toward the guest get lost', async () => {
    const upload = pattern(MiB, 3);
    const download = pattern(MiB, 4);
    let serverGot = '';
    let serverEnded = false;
    const srv = await startServer((s) => {
      const parts: Buffer[] = [];
      s.end(download); // host sends everything and its FIN at once
      s.on('data', (d) => parts.push(d));
      s.on('end', () => {
        serverGot = sha(Buffer.concat(parts));
        serverEnded = true;
      });
    });
    try {
      await withNet({ tcp: { rtoMs: 100 } }, async (n, g) => {
        const c = guestConn(g, srv.port, { dropEvery: 29 });
        assert.equal(await c.connect(), 'established');
        await c.until(() => c.finReceived, 20000, 'download and host FIN');
        assert.equal(sha(c.data()), sha(download));
        assert.ok(c.dropped > 10, `the guest ignored ${c.dropped} segments`);
        // Still open in our direction.
        c.write(upload);
        c.shutdown();
        await c.until(() => c.finAcked, 20000, 'upload acknowledged');
        await waitFor(() => serverEnded, 5000, 'server sees the end');
        assert.equal(serverGot, sha(upload));
        await waitFor(() => n.connections().tcp === 0, 5000, 'connection table empty');
      });
    } finally {
      await srv.close();
    }
  });

  test('a small guest window and MSS are honoured', async () => {
    const download = pattern(200_000, 5);
    const srv = await startServer((s) => s.end(download));
    try {
      await withNet({}, async (_n, g) => {
        let maxSeg = 0;
        g.dropFilter = (p) => {
          if (p.tcp) maxSeg = Math.max(maxSeg, p.tcp.payload.length);
          return false;
        };
        const c = guestConn(g, srv.port, { mss: 536, window: 2000 });
        assert.equal(await c.connect(), 'established');
        await c.until(() => c.finReceived, 20000, 'download');
        assert.equal(sha(c.data()), sha(download));
        assert.ok(maxSeg <= 536, `largest segment ${maxSeg}`);
        c.shutdown();
        await c.until(() => c.finAcked, 5000, 'FIN acked');
      });
    } finally {
      await srv.close();
    }
  });

  test('a slow host reader closes the window instead of buffering without bound', async () => {
    let hostSock: net.Socket | null = null;
    const srv = await startServer((s) => {
      hostSock = s;
      s.pause();
    });
    try {
      await withNet({}, async (n, g) => {
        const c = guestConn(g, srv.port);
        assert.equal(await c.connect(), 'established');
        const big = pattern(16 * MiB, 6);
        c.write(big);
        await waitFor(() => c.peerWnd === 0, 10000, 'zero window from the stack');
        const acked = (c.sndUna - c.iss - 1) >>> 0;
        assert.ok(acked < 16 * MiB, 'not everything was taken');
        // Whatever the stack accepted is at most its queue plus the kernel's socket buffers.
        await new Promise((r) => setTimeout(r, 300));
        const acked2 = (c.sndUna - c.iss - 1) >>> 0;
        assert.equal(acked2, acked, 'nothing more is accepted while the host does not read');
        const got: Buffer[] = [];
        let gotBytes = 0;
        hostSock!.on('data', (d) => { got.push(d); gotBytes += d.length; });
        hostSock!.resume();
        await waitFor(() => gotBytes === 16 * MiB, 30000, 'all data after the reader resumes');
        assert.equal(sha(Buffer.concat(got)), sha(big));
        c.sendRst();
        await waitFor(() => n.connections().tcp === 0, 2000, 'RST clears the connection');
      });
    } finally {
      await srv.close();
    }
  });

  test('RST from the host reaches the guest; RST from the guest resets the host socket', async () => {
    const events: string[] = [];
    const srv = await startServer((s) => {
      s.on('data', (d) => {
        if (d.toString().includes('reset-me')) s.resetAndDestroy();
      });
      s.on('error', (e: NodeJS.ErrnoException) => events.push(e.code ?? 'error'));
      s.on('close', () => events.push('close'));
    });
    try {
      await withNet({}, async (n, g) => {
        const a = guestConn(g, srv.port);
        assert.equal(await a.connect(), 'established');
        a.write(Buffer.from('reset-me'));
        await a.until(() => a.state === 'reset', 5000, 'RST to the guest');
        await waitFor(() => n.connections().tcp === 0, 2000, 'table cleared');

        const b = guestConn(g, srv.port);
        assert.equal(await b.connect(), 'established');
        await waitFor(() => srv.accepted === 2, 2000, 'second accept');
        b.sendRst();
        await waitFor(() => events.includes('ECONNRESET'), 3000, 'host socket reset');
        assert.equal(n.connections().tcp, 0);
      });
    } finally {
      await srv.close();
    }
  });
});

describe('refusals', () => {
  test('a refused connection gives the guest a RST', async () => {
    const srv = await startServer(() => {});
    const port = srv.port;
    await srv.close();
    await withNet({}, async (n, g) => {
      const c = guestConn(g, port);
      assert.equal(await c.connect(), 'reset');
      assert.equal(n.connections().tcp, 0);
    });
  });

  test('a destination outside the allow-list gets a RST and the server never sees a connection', async () => {
    const srv = await startServer(() => {});
    try {
      await withNet({ allow: ['10.255.0.0/16'] }, async (n, g) => {
        const c = guestConn(g, srv.port);
        assert.equal(await c.connect(), 'reset');
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(srv.accepted, 0);
        assert.equal(n.dropReasons()['tcp-denied'], 1);
      });
      await withNet({ allow: ['127.0.0.1/8'] }, async (_n, g) => {
        const c = guestConn(g, srv.port);
        assert.equal(await c.connect(), 'established', 'the gateway counts as 127.0.0.1');
        c.sendRst();
      });
    } finally {
      await srv.close();
    }
  });

  test('a segment for no connection is answered with a RST', () =>
    withNet({}, async (n, g) => {
      const c = new GuestTcp(g, 34999, GW_IP, 9);
      c.state = 'established';
      c.write(Buffer.from('x'));
      await c.until(() => c.state === 'reset', 2000, 'RST');
      assert.equal(n.dropReasons()['tcp-no-connection'], 1);
      c.stopTimers();
    }));
});

describe('hostfwd', () => {
  test('TCP: a host connection becomes a guest connection; data flows both ways', () =>
    withNet({ hostfwd: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 80 }] }, async (n, g) => {
      await n.listen();
      const [fwd] = n.forwardedPorts();
      assert.equal(fwd.proto, 'tcp');
      const fromHost = pattern(300_000, 7);
      const fromGuest = pattern(500_000, 8);
      let guestSide: GuestTcp | null = null;
      g.listen(80, (c) => {
        guestSide = c;
      });
      // The guest has not sent anything yet: the stack must find its MAC with ARP.
      const sock = net.connect({ host: '127.0.0.1', port: fwd.port, allowHalfOpen: true });
      const got: Buffer[] = [];
      let ended = false;
      sock.on('data', (d) => got.push(d));
      sock.on('end', () => { ended = true; });
      await new Promise<void>((r) => sock.on('connect', () => r()));
      sock.end(fromHost);
      await waitFor(() => guestSide !== null, 5000, 'SYN to the guest');
      const c = guestSide!;
      assert.equal(c.remoteIp, GW_IP, 'forwarded connections come from the gateway');
      await c.until(() => c.state === 'established' && c.finReceived, 10000, 'host data and FIN');
      assert.equal(sha(c.data()), sha(fromHost));
      c.write(fromGuest);
      c.shutdown();
      await waitFor(() => ended, 10000, 'guest data and FIN at the host');
      assert.equal(sha(Buffer.concat(got)), sha(fromGuest));
      sock.destroy();
    }));

  test('UDP: datagrams are forwarded to the guest and its replies come back', () =>
    withNet({ hostfwd: [{ proto: 'udp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 5353 }] }, async (n, g) => {
      await n.listen();
      g.send(arpRequest(GW_IP)); // the guest is up: its MAC is known
      const port = n.forwardedPorts()[0].port;
      const client = dgram.createSocket('udp4');
      try {
        const reply = new Promise<Buffer>((r) => client.on('message', (m) => r(m)));
        client.send(Buffer.from('ping'), port, '127.0.0.1');
        const d = await g.waitFor((p) => p.udp?.dport === 5353, 2000, 'forwarded datagram');
        assert.equal(Buffer.from(d.udp!.payload).toString(), 'ping');
        assert.equal(d.ip!.src, GW_IP);
        assert.equal(d.ip!.dst, GUEST_IP);
        g.send(udpFrame(GUEST_IP, GW_IP, 5353, d.udp!.sport, Buffer.from('pong')));
        assert.equal((await reply).toString(), 'pong');
      } finally {
        client.close();
      }
    }));

  test('a port in use is a clear error from listen()', async () => {
    const srv = await startServer(() => {});
    try {
      const n = new UserNet({ dnsServer: [], hostfwd: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: srv.port, guestPort: 22 }] });
      await assert.rejects(n.listen(), { message: `--net user: hostfwd tcp:127.0.0.1:${srv.port}-10.0.2.15:22: address already in use` });
      await n.close();
      const bad = new UserNet({ dnsServer: [], hostfwd: [{ proto: 'udp', hostAddr: '192.0.2.1', hostPort: 0, guestPort: 53 }] });
      await assert.rejects(bad.listen(), /--net user: hostfwd udp:192\.0\.2\.1:0-10\.0\.2\.15:53: address not available on this host/);
      await bad.close();
    } finally {
      await srv.close();
    }
  });
});

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('flow control and odd segments', () => {
  test('a guest that stops reading gets zero-window probes and the host socket is held back', async () => {
    const total = 32 * MiB;
    const download = pattern(total, 9);
    let hostSock: net.Socket | null = null;
    const srv = await startServer((s) => {
      hostSock = s;
      s.end(download);
    });
    try {
      await withNet({ tcp: { rtoMs: 50, maxRtoMs: 200 } }, async (_n, g) => {
        const c = guestConn(g, srv.port, { hold: true, window: 20000 });
        assert.equal(await c.connect(), 'established');
        await c.until(() => c.window() < 1460, 5000, 'window filled');
        await new Promise((r) => setTimeout(r, 600));
        assert.ok(c.receivedBytes <= 20000, `received ${c.receivedBytes} within the window`);
        assert.ok(c.probesSeen >= 2, `zero-window probes seen: ${c.probesSeen}`);
        assert.ok(hostSock!.writableLength > 0, 'the host writer is held back, not drained into an unbounded buffer');
        // From here on, read everything as it comes.
        const interval = setInterval(() => c.release(), 2);
        try {
          await c.until(() => c.finReceived, 30000, 'the rest after the guest reads');
        } finally {
          clearInterval(interval);
        }
        assert.equal(c.receivedBytes, total);
        assert.equal(sha(c.data()), sha(download));
        c.shutdown();
        await c.until(() => c.finAcked, 5000, 'FIN acked');
      });
    } finally {
      await srv.close();
    }
  });

  test('out-of-order and duplicate guest segments are dropped and re-ACKed; the byte stream stays exact', async () => {
    const parts: Buffer[] = [];
    let ended = false;
    const srv = await startServer((s) => {
      s.on('data', (d) => parts.push(d));
      s.on('end', () => { ended = true; s.end(); });
    });
    try {
      await withNet({}, async (_n, g) => {
        const c = guestConn(g, srv.port);
        assert.equal(await c.connect(), 'established');
        const base = c.sndNxt;
        const acks: number[] = [];
        g.dropFilter = (p) => {
          if (p.tcp && p.tcp.dport === c.localPort && p.tcp.payload.length === 0) acks.push(p.tcp.ack);
          return false;
        };
        const rcv = c.rcvNxt;
        c.sendRaw(TCP_ACK, base + 5, rcv, Buffer.from('world')); // a hole before it
        c.sendRaw(TCP_ACK, base, rcv, Buffer.from('hello'));
        c.sendRaw(TCP_ACK, base, rcv, Buffer.from('hello')); // duplicate
        c.sendRaw(TCP_ACK, base + 2, rcv, Buffer.from('llo, w')); // overlaps: only ", w" is new
        c.sendRaw(TCP_ACK, base + 8, rcv, Buffer.from('orld'));
        c.sendRaw(TCP_ACK | TCP_FIN, base + 12, rcv);
        await waitFor(() => ended, 3000, 'host sees the end');
        assert.equal(Buffer.concat(parts).toString(), 'hello, world');
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(acks[0], base, 'the out-of-order segment is re-ACKed at once');
        assert.ok(acks.includes((base + 13) >>> 0), 'FIN acknowledged');
      });
    } finally {
      await srv.close();
    }
  });
});

describe('lifecycle', () => {
  test('a forwarded connection the guest refuses is closed on the host', () =>
    withNet({ hostfwd: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 81 }] }, async (n, g) => {
      await n.listen();
      g.send(arpRequest(GW_IP));
      const sock = net.connect({ host: '127.0.0.1', port: n.forwardedPorts()[0].port });
      let closed = false;
      sock.on('error', () => {});
      sock.on('close', () => { closed = true; });
      const syn = await g.waitFor((p) => p.tcp?.dport === 81, 3000, 'SYN to the guest');
      // A guest with nothing on port 81 answers RST|ACK.
      const t = syn.tcp!;
      const c = new GuestTcp(g, 81, GW_IP, t.sport);
      c.sendRaw(TCP_ACK | 4, 0, (t.seq + 1) >>> 0);
      c.stopTimers();
      await waitFor(() => closed, 3000, 'host socket closed');
      assert.equal(n.connections().tcp, 0);
    }));

  test('close() releases every socket, server and timer', async () => {
    const count = () => {
      const m = new Map<string, number>();
      for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
      return m;
    };
    const before = count();
    const srv = await startServer(() => {});
    const silentDns = dgram.createSocket('udp4');
    await new Promise<void>((r) => silentDns.bind(0, '127.0.0.1', () => r()));
    const n = new UserNet({
      dnsServer: `127.0.0.1:${silentDns.address().port}`,
      hostLoopback: true,
      hostfwd: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 80 }, { proto: 'udp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 53 }],
    });
    await n.listen();
    const g = new FakeGuest(n);
    const c = guestConn(g, srv.port);
    assert.equal(await c.connect(), 'established');
    c.write(Buffer.alloc(10000, 1));
    g.send(udpFrame(GUEST_IP, GW_IP, 6000, srv.port, Buffer.from('x'))); // a UDP flow
    g.send(udpFrame(GUEST_IP, DNS_IP, 6001, 53, dnsQuery(1, 'example.invalid', 1))); // a query in flight
    const half = new GuestTcp(g, 6002, GW_IP, 1); // a connect in progress (refused later or not)
    void half.connect(200).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    g.close();
    half.stopTimers();
    await n.close();
    silentDns.close();
    await srv.close();
    await new Promise((r) => setTimeout(r, 50));
    const after = count();
    const left = [...after].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k, v]) => `${k} x${v - (before.get(k) ?? 0)}`);
    assert.deepEqual(left, [], 'nothing left open');
  });
});

describe('DNS over TCP', () => {
  test('an answer too big for a datagram is truncated (TC) and the guest retries over TCP to 10.0.2.3:53', async () => {
    const big = (q: Buffer) => {
      const nameEnd = q.indexOf(0, 12);
      const head = Buffer.from(q.subarray(0, nameEnd + 5));
      head[2] = 0x81;
      head[3] = 0x80;
      head.writeUInt16BE(120, 6);
      const rrs: Buffer[] = [];
      for (let i = 0; i < 120; i++) rrs.push(Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 9, i, 7]));
      return Buffer.concat([head, ...rrs]);
    };
    const udpSrv = dgram.createSocket('udp4');
    udpSrv.on('message', (m, r) => udpSrv.send(big(m), r.port, r.address));
    await new Promise<void>((r) => udpSrv.bind(0, '127.0.0.1', () => r()));
    const port = udpSrv.address().port;
    const tcpSrv = net.createServer((s) => {
      s.on('error', () => {});
      s.once('data', (d) => {
        const ans = big(d.subarray(2));
        const len = Buffer.alloc(2);
        len.writeUInt16BE(ans.length);
        s.end(Buffer.concat([len, ans]));
      });
    });
    await new Promise<void>((r) => tcpSrv.listen(port, '127.0.0.1', () => r()));
    try {
      await withNet({ dnsServer: `127.0.0.1:${port}` }, async (_n, g) => {
        const q = dnsQuery(0x77, 'big.tsvisor.test', 1);
        g.send(udpFrame(GUEST_IP, DNS_IP, 41000, 53, q));
        const r = await g.waitFor((p) => p.udp?.dport === 41000, 2000, 'truncated answer');
        const a = r.udp!.payload;
        assert.equal(a[2] & 0x02, 0x02, 'TC set');
        assert.equal((a[6] << 8) | a[7], 0, 'no answers in the truncated response');
        const c = new GuestTcp(g, 41001, DNS_IP, 53);
        assert.equal(await c.connect(), 'established');
        const len = Buffer.alloc(2);
        len.writeUInt16BE(q.length);
        c.write(Buffer.concat([len, q]));
        c.shutdown();
        await c.until(() => c.finReceived, 5000, 'TCP answer');
        const ans = Buffer.from(c.data());
        assert.equal(ans.readUInt16BE(0), ans.length - 2);
        assert.equal(ans.readUInt16BE(2 + 6), 120, '120 answers over TCP');
      });
    } finally {
      udpSrv.close();
      await new Promise((r) => tcpSrv.close(r));
    }
  });
});

// The user-mode stack keeps the guest away from the host itself unless asked:
// a scripted guest against real servers on the host's loopback and on its LAN
// address. By default the gateway is not the host's loopback and the host's
// own addresses are refused; guestfwd and host-loopback=on open the way; the
// daemon's protected API port stays shut whatever the options; hostfwd
// without an address listens on the loopback only.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { UserNet } from '../src/net/user/user-net.js';
import { parseUserNetOptions, type UserNetOptions } from '../src/net/user/options.js';
import { FakeGuest, GuestTcp, GW_IP, GUEST_IP, DNS_IP, arpRequest, dnsQuery, ip, parseDnsResponse, udpFrame } from './lib/net-frames.js';

/** A non-loopback IPv4 address of this host, or null. */
function lanAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}
const LAN = lanAddress();

interface Server {
  port: number;
  accepted: number;
  close(): Promise<void>;
}

/** A TCP server that answers "hello from PORT" to each connection. */
function server(host: string): Promise<Server> {
  return new Promise((resolve) => {
    const socks: net.Socket[] = [];
    const s: Server = { port: 0, accepted: 0, close: () => new Promise((r) => { for (const x of socks) x.destroy(); srv.close(() => r()); }) };
    const srv = net.createServer((c) => {
      s.accepted++;
      socks.push(c);
      c.on('error', () => {});
      c.end(`hello from ${s.port}`);
    });
    srv.listen(0, host, () => {
      s.port = (srv.address() as net.AddressInfo).port;
      resolve(s);
    });
  });
}

function options(text: string, extra: Partial<UserNetOptions> = {}): UserNetOptions {
  const r = parseUserNetOptions(text === '' ? [] : text.split(','));
  if (!r.ok) assert.fail(r.error);
  // No upstream resolvers unless the text names one: nothing leaves for the host's.
  return { dnsServer: [], ...r.options, ...extra };
}

async function withNet(o: UserNetOptions, body: (n: UserNet, g: FakeGuest) => Promise<void>): Promise<void> {
  const n = new UserNet(o);
  const g = new FakeGuest(n);
  try {
    await n.listen();
    await body(n, g);
  } finally {
    g.close();
    await n.close();
  }
}

let nextPort = 41000;
/** Connects from the guest; resolves to what the host server said, or "reset". */
async function dial(g: FakeGuest, dst: number, port: number): Promise<string> {
  const c = new GuestTcp(g, nextPort++, dst, port);
  const r = await c.connect();
  if (r === 'reset') return 'reset';
  await c.until(() => c.finReceived, 5000, 'the server to answer and close');
  c.sendRst();
  return Buffer.from(c.data()).toString();
}

describe('the host is closed to the guest by default', () => {
  test('the gateway does not reach the host loopback: TCP gets a RST, the server sees nothing; UDP is dropped; DNS still works', async () => {
    const srv = await server('127.0.0.1');
    const udp = dgram.createSocket('udp4');
    let datagrams = 0;
    udp.on('message', () => datagrams++);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const upstream = dgram.createSocket('udp4');
    upstream.on('message', (q, rinfo) => {
      // A minimal answer from a resolver on the host's loopback: the query back with QR set, NXDOMAIN.
      const r = Buffer.from(q);
      r[2] |= 0x80;
      r[3] = (r[3] & 0xf0) | 3;
      upstream.send(r, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
    try {
      await withNet(options(`dns-server=127.0.0.1:${upstream.address().port}`), async (n, g) => {
        assert.equal(await dial(g, GW_IP, srv.port), 'reset');
        g.send(udpFrame(GUEST_IP, GW_IP, 5000, udp.address().port, new Uint8Array([1])));
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(srv.accepted, 0);
        assert.equal(datagrams, 0);
        assert.equal(n.dropReasons()['tcp-host-denied'], 1);
        assert.equal(n.dropReasons()['udp-host-denied'], 1);
        g.send(udpFrame(GUEST_IP, DNS_IP, 5353, 53, dnsQuery(77, 'nothing.test', 1)));
        const p = await g.waitFor((f) => f.udp?.dport === 5353, 3000, 'the DNS answer');
        const a = parseDnsResponse(p.udp!.payload);
        assert.equal(a.id, 77);
        assert.equal(a.rcode, 3);
      });
    } finally {
      await srv.close();
      udp.close();
      upstream.close();
    }
  });

  test("the host's LAN address is refused too, even when the allow-list names it", { skip: LAN ? false : 'no non-loopback IPv4 address on this host' }, async () => {
    const srv = await server('0.0.0.0');
    try {
      await withNet(options(`allow=${LAN}/32`), async (n, g) => {
        assert.equal(await dial(g, ip(LAN!), srv.port), 'reset');
        assert.equal(srv.accepted, 0);
        assert.equal(n.dropReasons()['tcp-host-denied'], 1);
      });
      await withNet(options('host-loopback=on'), async (_n, g) => {
        assert.equal(await dial(g, ip(LAN!), srv.port), `hello from ${srv.port}`, 'host-loopback=on opens the host addresses');
      });
    } finally {
      await srv.close();
    }
  });
});

describe('ways to the host', () => {
  test('host-loopback=on: the gateway is the host loopback again', async () => {
    const srv = await server('127.0.0.1');
    try {
      await withNet(options('host-loopback=on'), async (_n, g) => {
        assert.equal(await dial(g, GW_IP, srv.port), `hello from ${srv.port}`);
      });
    } finally {
      await srv.close();
    }
  });

  test('guestfwd: its address answers ARP and its port leads to the host target, nothing else does', async () => {
    const srv = await server('127.0.0.1');
    const other = await server('127.0.0.1');
    try {
      await withNet(options(`guestfwd=tcp:10.0.2.100:80-127.0.0.1:${srv.port},guestfwd=tcp:10.0.2.2:8000-tcp:127.0.0.1:${srv.port}`), async (n, g) => {
        g.send(arpRequest(ip('10.0.2.100')));
        const arp = await g.waitFor((f) => f.arp?.op === 2 && f.arp.senderIp === ip('10.0.2.100'), 2000, 'ARP reply for the guestfwd address');
        assert.ok(arp);
        assert.equal(await dial(g, ip('10.0.2.100'), 80), `hello from ${srv.port}`);
        assert.equal(await dial(g, GW_IP, 8000), `hello from ${srv.port}`, 'a guestfwd on the gateway address');
        assert.equal(await dial(g, ip('10.0.2.100'), 81), 'reset', 'another port of the guestfwd address');
        assert.equal(await dial(g, GW_IP, other.port), 'reset', 'the gateway still does not reach other loopback ports');
        assert.equal(other.accepted, 0);
        assert.equal(n.dropReasons()['tcp-host-denied'], 1);
      });
    } finally {
      await srv.close();
      await other.close();
    }
  });

  test('the host policy: connect rules limit host-loopback; protected ports stay shut for guestfwd, host-loopback and DNS over TCP', async () => {
    const api = await server('127.0.0.1'); // stands for the daemon's TCP API
    const web = await server('127.0.0.1');
    try {
      const access = { connect: ['127.0.0.1:1024-65535'], listen: null, protectedPorts: [api.port] };
      await withNet(
        options(`host-loopback=on,guestfwd=tcp:10.0.2.100:80-127.0.0.1:${api.port},dns-server=127.0.0.1:${api.port}`, { hostAccess: access }),
        async (_n, g) => {
          assert.equal(await dial(g, GW_IP, web.port), `hello from ${web.port}`);
          assert.equal(await dial(g, GW_IP, api.port), 'reset', 'host-loopback to the API port');
          assert.equal(await dial(g, ip('10.0.2.100'), 80), 'reset', 'guestfwd to the API port');
          assert.equal(await dial(g, DNS_IP, 53), 'reset', 'DNS over TCP to an upstream on the API port');
          if (LAN) assert.equal(await dial(g, ip(LAN), api.port), 'reset', "the API port on the host's LAN address");
          assert.equal(await dial(g, GW_IP, 22), 'reset', 'a port outside the connect rules');
        },
      );
      assert.equal(api.accepted, 0, 'the API server never saw a connection');
    } finally {
      await api.close();
      await web.close();
    }
  });
});

describe('hostfwd', () => {
  test('without a host address it listens on 127.0.0.1 only', async () => {
    await withNet(options('hostfwd=tcp::0-:80'), async (n) => {
      const [f] = n.forwardedPorts();
      assert.equal(f.hostAddr, '127.0.0.1');
      const reach = (host: string) =>
        new Promise<boolean>((resolve) => {
          const s = net.connect({ host, port: f.port });
          s.on('connect', () => { s.destroy(); resolve(true); });
          s.on('error', () => resolve(false));
        });
      assert.equal(await reach('127.0.0.1'), true);
      if (LAN) assert.equal(await reach(LAN), false, 'not on the LAN address');
    });
  });

  test('a protected port or one outside the listen rules is refused before anything binds', () => {
    const make = (text: string, access: UserNetOptions['hostAccess']) => () => new UserNet(options(text, { hostAccess: access }));
    assert.throws(make('hostfwd=tcp::8123-:80', { connect: null, listen: null, protectedPorts: [8123] }), {
      message: '--net user: bad hostfwd "tcp:127.0.0.1:8123-:80": host port 8123 is the daemon\'s API port',
    });
    assert.throws(make('hostfwd=tcp:0.0.0.0:8123-:80', { connect: null, listen: ['127.0.0.1:*'], protectedPorts: [] }), {
      message: '--net user: bad hostfwd "tcp:0.0.0.0:8123-:80": the host\'s policy does not allow listening on 0.0.0.0:8123: 0.0.0.0 (every host address) needs a rule naming 0.0.0.0 itself',
    });
  });
});

// --net user,... parsing: accepted forms and the exact error texts.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseUserNetOptions, resolveUserNetConfig } from '../src/net/user/options.js';
import { ip4ToString } from '../src/net/user/addr.js';

function ok(params: string[]) {
  const r = parseUserNetOptions(params);
  if (!r.ok) assert.fail(r.error);
  return r.options;
}

function err(params: string[]): string {
  const r = parseUserNetOptions(params);
  assert.equal(r.ok, false, `expected ${JSON.stringify(params)} to be refused`);
  return r.ok ? '' : r.error;
}

describe('parseUserNetOptions', () => {
  test('no items: QEMU defaults', () => {
    const o = ok([]);
    assert.deepEqual(o, {});
    const c = resolveUserNetConfig(o);
    assert.ok(c.ok);
    if (!c.ok) return;
    assert.equal(ip4ToString(c.value.host), '10.0.2.2');
    assert.equal(ip4ToString(c.value.dns), '10.0.2.3');
    assert.equal(ip4ToString(c.value.guest), '10.0.2.15');
    assert.equal(ip4ToString(c.value.mask), '255.255.255.0');
    assert.deepEqual([...c.value.gatewayMac], [0x52, 0x55, 10, 0, 2, 2]);
    assert.equal(c.value.allow, null);
    assert.equal(c.value.dnsUpstreams, null);
  });

  test('the full example from the help text', () => {
    const o = ok(['hostfwd=tcp:127.0.0.1:8080-:80', 'hostfwd=udp::5353-:53', 'allow=127.0.0.1/8', '10.1.2.0/24', 'dns-server=127.0.0.1:5353', 'net=10.0.2.0/24']);
    assert.deepEqual(o.hostfwd, [
      { proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 8080, guestPort: 80 },
      { proto: 'udp', hostAddr: '127.0.0.1', hostPort: 5353, guestPort: 53 },
    ]);
    assert.deepEqual(o.allow, ['127.0.0.1/8', '10.1.2.0/24']);
    assert.deepEqual(o.dnsServer, ['127.0.0.1:5353']);
    assert.equal(o.net, '10.0.2.0/24');
  });

  test('net moves the default addresses; explicit ones are kept', () => {
    const c = resolveUserNetConfig(ok(['net=10.0.3.0/24']));
    assert.ok(c.ok && ip4ToString(c.value.host) === '10.0.3.2' && ip4ToString(c.value.dns) === '10.0.3.3' && ip4ToString(c.value.guest) === '10.0.3.15');
    const d = resolveUserNetConfig(ok(['net=192.168.76.0/24', 'host=192.168.76.1', 'dns=192.168.76.53', 'dhcpstart=192.168.76.100']));
    assert.ok(d.ok && ip4ToString(d.value.host) === '192.168.76.1' && ip4ToString(d.value.guest) === '192.168.76.100');
    const e = resolveUserNetConfig(ok(['net=10.0.2.0']));
    assert.ok(e.ok && e.value.net.prefix === 24, 'a bare network is /24');
  });

  test('hostfwd forms', () => {
    assert.deepEqual(ok(['hostfwd=:127.0.0.1:2222-10.0.2.15:22']).hostfwd, [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 2222, guestAddr: '10.0.2.15', guestPort: 22 }]);
    assert.deepEqual(ok(['hostfwd=tcp::0-:22']).hostfwd, [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 22 }]);
    assert.deepEqual(ok(['dns-server=none']).dnsServer, []);
    assert.deepEqual(ok(['dns-server=192.0.2.53']).dnsServer, ['192.0.2.53']);
  });

  test('bad items have exact messages', () => {
    const cases: [string[], string][] = [
      [['foo'], '--net user: bad item "foo": expected key=value'],
      [['color=blue'], '--net user: unknown option "color"'],
      [['hostfwd=tcp:x-:80'], '--net user: bad hostfwd "tcp:x-:80": expected [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport'],
      [['hostfwd=tcp:x:1-:80'], '--net user: bad hostfwd "tcp:x:1-:80": host address "x" is not an IPv4 address'],
      [['hostfwd=sctp::1-:80'], '--net user: bad hostfwd "sctp::1-:80": protocol "sctp" is not tcp or udp'],
      [['hostfwd=tcp::70000-:80'], '--net user: bad hostfwd "tcp::70000-:80": host port "70000" is not a number from 0 to 65535'],
      [['hostfwd=tcp::80-:0'], '--net user: bad hostfwd "tcp::80-:0": guest port "0" is not a number from 1 to 65535'],
      [['hostfwd=tcp::80-1.2.3:22'], '--net user: bad hostfwd "tcp::80-1.2.3:22": guest address "1.2.3" is not an IPv4 address'],
      [['hostfwd=tcp::80-10.0.9.9:22'], '--net user: bad hostfwd "tcp::80-10.0.9.9:22": guest address "10.0.9.9" is not inside the network 10.0.2.0/24'],
      [['hostfwd=tcp::80-10.0.2.9:22', 'net=10.0.3.0/24'], '--net user: bad hostfwd "tcp::80-10.0.2.9:22": guest address "10.0.2.9" is not inside the network 10.0.3.0/24'],
      [['hostfwd=tcp::80-:22', 'hostfwd=tcp::80-:23'], '--net user: hostfwd tcp 127.0.0.1:80 given twice'],
      [['allow=10.1.2.0/33'], '--net user: bad allow "10.1.2.0/33": expected an IPv4 address or CIDR block such as 10.1.2.0/24'],
      [['allow=10.0.0.0/8', 'bogus'], '--net user: bad allow "bogus": expected an IPv4 address or CIDR block such as 10.1.2.0/24'],
      [['dns-server=localhost:53'], '--net user: bad dns-server "localhost:53": expected an IPv4 address with an optional port, such as 127.0.0.1:5353, or none'],
      [['dns-server=127.0.0.1:0'], '--net user: bad dns-server "127.0.0.1:0": expected an IPv4 address with an optional port, such as 127.0.0.1:5353, or none'],
      [['net=10.0.2.0/30'], '--net user: bad net "10.0.2.0/30": expected an IPv4 network with a prefix from /8 to /28, such as 10.0.2.0/24'],
      [['net=300.0.2.0/24'], '--net user: bad net "300.0.2.0/24": expected an IPv4 network with a prefix from /8 to /28, such as 10.0.2.0/24'],
      [['host=10.0.3.2'], '--net user: bad host "10.0.3.2": not a host address inside the network 10.0.2.0/24'],
      [['dns=10.0.2.255'], '--net user: bad dns "10.0.2.255": not a host address inside the network 10.0.2.0/24'],
      [['dhcpstart=ten'], '--net user: bad dhcpstart "ten": not an IPv4 address'],
      [['host=10.0.2.3'], '--net user: the host, dns and dhcpstart addresses must all differ'],
      [['net=10.0.2.0/28'], '--net user: network 10.0.2.0/28 is too small for the default dhcpstart address'],
      [['net=10.0.2.0/24', 'net=10.0.3.0/24'], '--net user: net given twice'],
    ];
    for (const [params, msg] of cases) assert.equal(err(params), msg, JSON.stringify(params));
  });

  test('a CIDR list continues only after allow', () => {
    assert.equal(err(['net=10.0.2.0/24', '10.1.2.0/24']), '--net user: bad item "10.1.2.0/24": expected key=value');
  });
});

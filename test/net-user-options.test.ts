// --net user,... parsing: accepted forms and the exact error texts.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseUserNetOptions, resolveUserNetConfig } from '../src/net/user/options.js';
import { ip4ToString, parseIp4 } from '../src/net/user/addr.js';
import { parseEndpointRule, ruleMatches } from '../src/net/user/host-access.js';

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

describe('guestfwd and host-loopback', () => {
  test('forms: QEMU\'s "tcp:" target prefix is optional; the resolved addresses', () => {
    const o = ok(['guestfwd=tcp:10.0.2.100:80-127.0.0.1:8080', 'guestfwd=:10.0.2.2:8000-tcp:192.0.2.7:80', 'host-loopback=off']);
    assert.deepEqual(o.guestfwd, [
      { guestAddr: '10.0.2.100', guestPort: 80, hostAddr: '127.0.0.1', hostPort: 8080 },
      { guestAddr: '10.0.2.2', guestPort: 8000, hostAddr: '192.0.2.7', hostPort: 80 },
    ]);
    assert.equal(o.hostLoopback, false);
    const c = resolveUserNetConfig(o);
    assert.ok(c.ok);
    if (!c.ok) return;
    assert.equal(c.value.hostLoopback, false);
    assert.deepEqual(c.value.guestfwd.map((g) => [ip4ToString(g.guestIp), g.guestPort, ip4ToString(g.hostIp), g.hostPort]), [
      ['10.0.2.100', 80, '127.0.0.1', 8080],
      ['10.0.2.2', 8000, '192.0.2.7', 80],
    ]);
    const on = resolveUserNetConfig(ok(['host-loopback=on']));
    assert.ok(on.ok && on.value.hostLoopback === true);
    const dflt = resolveUserNetConfig(ok([]));
    assert.ok(dflt.ok && dflt.value.hostLoopback === false && dflt.value.guestfwd.length === 0, 'off by default');
  });

  test('bad items have exact messages', () => {
    const cases: [string[], string][] = [
      [['guestfwd=10.0.2.100:80'], '--net user: bad guestfwd "10.0.2.100:80": expected tcp:guestaddr:guestport-hostaddr:hostport, such as tcp:10.0.2.100:80-127.0.0.1:8080'],
      [['guestfwd=udp:10.0.2.100:53-127.0.0.1:53'], '--net user: bad guestfwd "udp:10.0.2.100:53-127.0.0.1:53": protocol "udp" is not tcp (guestfwd forwards TCP only)'],
      [['guestfwd=tcp::80-127.0.0.1:8080'], '--net user: bad guestfwd "tcp::80-127.0.0.1:8080": guest address "" is not an IPv4 address'],
      [['guestfwd=tcp:10.0.2.100:0-127.0.0.1:8080'], '--net user: bad guestfwd "tcp:10.0.2.100:0-127.0.0.1:8080": guest port "0" is not a number from 1 to 65535'],
      [['guestfwd=tcp:10.0.2.100:80-cmd:nc 1.2.3.4 80'], '--net user: bad guestfwd "tcp:10.0.2.100:80-cmd:nc 1.2.3.4 80": host address "cmd" is not an IPv4 address'],
      [['guestfwd=tcp:10.0.2.100:80-localhost:8080'], '--net user: bad guestfwd "tcp:10.0.2.100:80-localhost:8080": host address "localhost" is not an IPv4 address'],
      [['guestfwd=tcp:10.0.2.100:80-127.0.0.1:65536'], '--net user: bad guestfwd "tcp:10.0.2.100:80-127.0.0.1:65536": host port "65536" is not a number from 1 to 65535'],
      [['guestfwd=tcp:10.0.9.1:80-127.0.0.1:8080'], '--net user: bad guestfwd "tcp:10.0.9.1:80-127.0.0.1:8080": guest address "10.0.9.1" is not a host address inside the network 10.0.2.0/24'],
      [['guestfwd=tcp:10.0.2.255:80-127.0.0.1:8080'], '--net user: bad guestfwd "tcp:10.0.2.255:80-127.0.0.1:8080": guest address "10.0.2.255" is not a host address inside the network 10.0.2.0/24'],
      [['guestfwd=tcp:10.0.2.3:80-127.0.0.1:8080'], '--net user: bad guestfwd "tcp:10.0.2.3:80-127.0.0.1:8080": guest address "10.0.2.3" is the DNS or the guest\'s own address'],
      [['guestfwd=tcp:10.0.2.15:80-127.0.0.1:8080'], '--net user: bad guestfwd "tcp:10.0.2.15:80-127.0.0.1:8080": guest address "10.0.2.15" is the DNS or the guest\'s own address'],
      [['guestfwd=tcp:10.0.2.9:80-127.0.0.1:1', 'guestfwd=tcp:10.0.2.9:80-127.0.0.1:2'], '--net user: guestfwd 10.0.2.9:80 given twice'],
      [['host-loopback=yes'], '--net user: bad host-loopback "yes": expected on or off'],
      [['host-loopback=on', 'host-loopback=off'], '--net user: host-loopback given twice'],
    ];
    for (const [params, msg] of cases) assert.equal(err(params), msg, JSON.stringify(params));
  });
});

describe('host policy rules', () => {
  const rule = (t: string) => {
    const r = parseEndpointRule(t);
    if (!r.ok) assert.fail(r.error);
    return r.rule;
  };
  const at = (a: string) => parseIp4(a)!;

  test('forms and what they cover', () => {
    assert.deepEqual({ ...rule('127.0.0.1:*'), net: undefined }, { text: '127.0.0.1:*', net: undefined, first: 1024, last: 65535 });
    const r = rule('10.1.0.0/16:8000-8999');
    assert.equal(ruleMatches(r, at('10.1.2.3'), 8000), true);
    assert.equal(ruleMatches(r, at('10.1.2.3'), 8999), true);
    assert.equal(ruleMatches(r, at('10.1.2.3'), 9000), false);
    assert.equal(ruleMatches(r, at('10.2.0.1'), 8000), false);
    assert.equal(ruleMatches(rule('127.0.0.1:8080'), at('127.0.0.1'), 8080), true);
  });

  test('privileged ports and 0.0.0.0 need consent written out', () => {
    assert.equal(ruleMatches(rule('127.0.0.1:*'), at('127.0.0.1'), 80), false, '* is unprivileged ports only');
    assert.equal(ruleMatches(rule('127.0.0.1:80'), at('127.0.0.1'), 80), true);
    assert.equal(ruleMatches(rule('127.0.0.1:1-65535'), at('127.0.0.1'), 22), true);
    assert.equal(ruleMatches(rule('0.0.0.0/0:*'), at('0.0.0.0'), 8080), false, 'a CIDR containing 0.0.0.0 is not consent to every address');
    assert.equal(ruleMatches(rule('0.0.0.0/0:*'), at('192.0.2.9'), 8080), true);
    assert.equal(ruleMatches(rule('0.0.0.0:8080'), at('0.0.0.0'), 8080), true);
    // Port 0 lets the kernel pick any unprivileged port: only a rule covering them all allows it.
    assert.equal(ruleMatches(rule('127.0.0.1:*'), at('127.0.0.1'), 0), true);
    assert.equal(ruleMatches(rule('127.0.0.1:8000-8999'), at('127.0.0.1'), 0), false);
  });

  test('bad rules', () => {
    const bad = (t: string) => {
      const r = parseEndpointRule(t);
      return r.ok ? '' : r.error;
    };
    assert.equal(bad('127.0.0.1'), 'bad rule "127.0.0.1": expected ADDR[/PREFIX]:PORTS, such as 127.0.0.1:8000-8999 or 127.0.0.1:*');
    assert.equal(bad('localhost:80'), 'bad rule "localhost:80": "localhost" is not an IPv4 address or CIDR block');
    assert.equal(bad('127.0.0.1:0'), 'bad rule "127.0.0.1:0": "0" is not a port (1-65535), a range N-M or *');
    assert.equal(bad('127.0.0.1:9-8'), 'bad rule "127.0.0.1:9-8": "9-8" is not a port (1-65535), a range N-M or *');
    assert.equal(bad('127.0.0.1:70000'), 'bad rule "127.0.0.1:70000": "70000" is not a port (1-65535), a range N-M or *');
  });
});

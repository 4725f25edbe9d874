// User-mode networking end to end, as a user would run it: `tsvisor run --net
// user,...` boots the default guest, which gets its address by DHCP, resolves a
// name through the test's own DNS server, downloads from an HTTP server on the
// host's loopback through the gateway (host-loopback=on), serves a page back through a hostfwd
// port, is refused by the allow-list, and then turns hostile (netfuzz sends
// thousands of malformed frames): the frames are dropped and counted and the
// network keeps working. Every socket is on 127.0.0.1.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildConsole } from './lib/vm-console.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { writeCpio } from '../src/image/cpio.js';
import { buildResponse, parseQuery, ipv4Bytes } from '../src/net/user/dns.js';
import { budget } from './lib/budget.js';
import { freePort } from './lib/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const NETFUZZ = join(ROOT, 'build/guest/linux/netfuzz.elf');
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-net-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('user networking: DHCP, DNS, download, hostfwd, allow-list, hostile frames', { timeout: budget(600_000) }, async () => {
  if (!existsSync(NETFUZZ)) {
    const b = spawnSync('bash', [join(ROOT, 'test/guest/build.sh')], { encoding: 'utf8' });
    assert.equal(b.status, 0, b.stderr);
  }
  const guest = await ensureDefaultGuest({});
  // The default initramfs plus a second archive with the hostile program (the kernel unpacks both).
  const extra = writeCpio([
    { path: 'usr', type: 'dir', mode: 0o755 },
    { path: 'usr/bin', type: 'dir', mode: 0o755 },
    { path: 'usr/bin/netfuzz', type: 'file', mode: 0o755, data: readFileSync(NETFUZZ) },
  ]);
  const initrd = join(dir, 'initrd');
  // The kernel looks for the next archive only at a 4-byte boundary: pad with zeros, which it skips.
  const base = readFileSync(guest.initrd);
  writeFileSync(initrd, Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), extra]));

  const blob = randomBytes(300 * 1024);
  const blobSum = createHash('sha256').update(blob).digest('hex');
  const web = http.createServer((req, res) => {
    if (req.url !== '/blob') return void res.writeHead(404).end();
    res.setHeader('content-length', blob.length);
    res.end(blob);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const webPort = (web.address() as net.AddressInfo).port;
  // The test's DNS server: files.test is the gateway (which is the host's loopback).
  const dns = dgram.createSocket('udp4');
  let dnsQueries = 0;
  dns.on('message', (q, rinfo) => {
    const qn = parseQuery(q);
    if (!qn) return;
    dnsQueries++;
    const answer = qn.name === 'files.test' && qn.type === 1 ? [ipv4Bytes('10.0.2.2')!] : [];
    dns.send(buildResponse(q, qn, answer.length ? 0 : 3, answer), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
  const dnsPort = dns.address().port;
  const fwdPort = await freePort();

  const child = spawn(
    process.execPath,
    [
      CLI, 'run', '--kernel', guest.kernel, '--initrd', initrd, '--mem', '128M', '--stats',
      '--net', `user,host-loopback=on,allow=127.0.0.1/8,dns-server=127.0.0.1:${dnsPort},hostfwd=tcp:127.0.0.1:${fwdPort}-:80`,
    ],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const c = new ChildConsole(child);
  try {
    await c.waitFor(/tsvisor guest ready/, 300_000);
    // DHCP in the background at boot: address, mask and router from the lease.
    await c.waitFor(/tsvisor guest: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/, 60_000);
    const route = await c.run('ip route; cat /etc/resolv.conf');
    assert.match(route, /default via 10\.0\.2\.2/);
    assert.match(route, /nameserver 10\.0\.2\.3/);

    const ns = await c.run('nslookup files.test', 60_000);
    assert.match(ns, /Address:? *(1: )?10\.0\.2\.2/);
    assert.ok(dnsQueries > 0, 'the query reached the test DNS server');

    const dl = await c.run(`wget -q -O /tmp/blob http://files.test:${webPort}/blob && sha256sum /tmp/blob`, 120_000);
    assert.ok(dl.includes(blobSum), `download differs: ${dl.slice(-300)}`);

    await c.run('mkdir -p /www && echo hello-from-the-guest > /www/index.html && httpd -p 80 -h /www');
    const page = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: fwdPort, path: '/index.html' }, (res) => {
        let body = '';
        res.on('data', (b) => (body += b));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    assert.equal(page.trim(), 'hello-from-the-guest');

    // Outside the allow-list: refused at once with a RST (wget reports the refusal).
    const denied = await c.run('wget -q -T 10 -O /dev/null http://192.0.2.1:80/', 60_000);
    assert.match(denied, /refused/i);
    assert.doesNotMatch(denied, /status 0/);

    // Hostile guest: malformed frames at the gateway's MAC.
    await c.run('ping -c 1 10.0.2.2 >/dev/null; awk \'$1=="10.0.2.2"{print $4}\' /proc/net/arp > /tmp/gwmac; cat /tmp/gwmac');
    const fuzz = await c.run('netfuzz', 120_000);
    assert.match(fuzz, /netfuzz sent \d+ frames/);
    const again = await c.run(`ping -c 2 10.0.2.2 && wget -q -O /tmp/b2 http://10.0.2.2:${webPort}/blob && sha256sum /tmp/b2`, 120_000);
    assert.match(again, /2 packets received/);
    assert.ok(again.includes(blobSum), 'the network still works after the hostile frames');
    c.type('poweroff -f');
    assert.equal(await c.exited, 0);
    // --stats at exit: the backend dropped (and counted) the malformed frames.
    const m = /(\d[\d,]*) frames dropped by the backend/.exec(c.out);
    assert.ok(m, `no NIC stats in the output: ${c.out.slice(-1500)}`);
    assert.ok(Number(m[1].replace(/,/g, '')) > 500, `dropped: ${m[1]}`);
  } finally {
    child.kill('SIGKILL');
    web.close();
    dns.close();
  }
});

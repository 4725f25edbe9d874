// A real Linux guest on the user-mode stack: the default guest boots under QEMU,
// and its virtio-net frames travel over a pair of loopback UDP sockets (QEMU's
// dgram netdev) to UserNet. This checks what the scripted guest cannot: busybox
// udhcpc, ping, nslookup, wget and nc over the kernel's own TCP, and a port
// forward. Skipped without qemu-system-riscv64 or a cached default guest
// (boot.test builds it). Every socket is on 127.0.0.1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { checkCachedGuest, defaultCacheDir } from '../src/image/default-guest.js';
import { UserNet } from '../src/net/user/user-net.js';
import { budget } from './lib/budget.js';

const QEMU = 'qemu-system-riscv64';

async function prerequisites(): Promise<string | { kernel: string; initrd: string }> {
  if (spawnSync(QEMU, ['--version']).status !== 0) return `${QEMU} not found`;
  const g = await checkCachedGuest(defaultCacheDir());
  if (!g) return 'no cached default guest';
  return g;
}

const pre = await prerequisites();

test('a Linux guest gets its lease, pings, resolves, downloads, uploads and serves a forwarded port', { skip: typeof pre === 'string' ? pre : false, timeout: budget(180_000) }, async () => {
  if (typeof pre === 'string') return;
  const blob = crypto.randomBytes(4 * 1024 * 1024);
  const md5 = (b: Uint8Array) => crypto.createHash('md5').update(b).digest('hex');
  const web = http.createServer((_req, res) => {
    res.setHeader('content-length', blob.length);
    res.end(blob);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  let upload = Buffer.alloc(0);
  const sinkSockets: net.Socket[] = [];
  const sink = net.createServer({ allowHalfOpen: true }, (s) => {
    sinkSockets.push(s);
    const parts: Buffer[] = [];
    s.on('error', () => {});
    s.on('data', (d) => parts.push(d));
    s.on('end', () => {
      upload = Buffer.concat(parts);
      s.end(`got-${upload.length}\n`);
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));

  const un = new UserNet({ dnsServer: [], hostLoopback: true, hostfwd: [{ proto: 'tcp', hostAddr: '127.0.0.1', hostPort: 0, guestPort: 8080 }] });
  await un.listen();
  const bridge = dgram.createSocket('udp4');
  await new Promise<void>((r) => bridge.bind(0, '127.0.0.1', () => r()));
  // QEMU's end: a free port found by binding and releasing it.
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
  const qemuPort = probe.address().port;
  await new Promise<void>((r) => probe.close(() => r()));
  bridge.on('message', (m) => un.fromGuest(m));
  un.start((f) => bridge.send(Buffer.from(f), qemuPort, '127.0.0.1'));

  const q: ChildProcess = spawn(QEMU, [
    '-M', 'virt', '-m', '512', '-nographic', '-no-reboot', '-kernel', pre.kernel, '-initrd', pre.initrd,
    '-append', 'console=ttyS0 tsvisor.dhcp=off',
    '-netdev', `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${bridge.address().port}`,
    '-device', 'virtio-net-device,netdev=n0',
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  q.stdout!.on('data', (d) => { out += d.toString('latin1'); });
  q.stderr!.on('data', (d) => { out += d.toString('latin1'); });
  const exited = new Promise<void>((r) => q.on('exit', () => r()));
  let from = 0;
  // Waits for output after the last match; markers use shell arithmetic so the
  // echo of the typed command never matches.
  const expect = async (re: RegExp, ms: number, what: string): Promise<RegExpExecArray> => {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(out.slice(from));
      if (m) {
        from += m.index + m[0].length;
        return m;
      }
      if (Date.now() > end) throw new Error(`guest: timed out waiting for ${what}; output:\n${out.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const type = (line: string) => q.stdin!.write(line + '\n');
  try {
    await expect(/tsvisor guest ready[^]*# /, 120_000, 'the shell prompt');
    type(`echo '#!/bin/sh' > ./dh.sh; echo '[ "$1" = bound ] || exit 0' >> ./dh.sh`);
    type(`echo 'ip addr add $ip/$mask dev $interface; ip route add default via $router; echo "LEASE=$ip/$mask,$router,$dns,$lease"' >> ./dh.sh; chmod +x ./dh.sh`);
    type('ip link set eth0 up; udhcpc -i eth0 -q -n -t 5 -T 1 -s ./dh.sh');
    await expect(/LEASE=10\.0\.2\.15\/24,10\.0\.2\.2,10\.0\.2\.3,86400/, 30_000, 'the DHCP lease');
    type('ping -c 2 -W 5 10.0.2.2 && echo PING-$((40+2))');
    await expect(/PING-42/, 20_000, 'ping');
    type('nslookup localhost 10.0.2.3; echo DNS-$((40+2))');
    const dns = await expect(/([\s\S]*?)DNS-42/, 20_000, 'nslookup');
    assert.match(dns[1], /Name:\s+localhost\s+Address:\s+127\.0\.0\.1/);
    type(`wget -q -O - http://10.0.2.2:${(web.address() as net.AddressInfo).port}/ | md5sum; echo WGET-$((40+2))`);
    const w = await expect(/([0-9a-f]{32})\s+-\s+WGET-42/, 60_000, 'wget');
    assert.equal(w[1], md5(blob), 'the download arrives intact');
    type(`dd if=/dev/urandom of=up bs=64k count=48 2>/dev/null; md5sum up; nc 10.0.2.2 ${(sink.address() as net.AddressInfo).port} < up; echo UP-$((40+2))`);
    const up = await expect(/([0-9a-f]{32})\s+up\s+got-(\d+)\s+UP-42/, 60_000, 'upload');
    assert.equal(Number(up[2]), 48 * 65536);
    assert.equal(md5(upload), up[1], 'the upload arrives intact, and the reply after the guest\'s FIN comes back');
    type('(echo from-guest | nc -l -p 8080 > f.txt &); sleep 1; echo LISTEN-$((40+2))');
    await expect(/LISTEN-42/, 20_000, 'nc -l');
    const fwdPort = un.forwardedPorts()[0].port;
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(fwdPort, '127.0.0.1');
      let d = '';
      s.on('data', (x) => { d += x; });
      s.on('end', () => resolve(d));
      s.on('error', reject);
      s.end('from-host\n');
    });
    assert.equal(reply, 'from-guest\n');
    type('sleep 1; cat f.txt; echo FWD-$((40+2))');
    await expect(/from-host\s+FWD-42/, 20_000, 'forwarded data in the guest');
    const reasons = un.dropReasons();
    assert.equal(reasons['internal-error'], undefined);
    for (const k of Object.keys(reasons)) assert.ok(/^(eth-multicast|ethertype)$/.test(k), `unexpected drop reason ${k}: ${JSON.stringify(reasons)}`);
    type('poweroff -f');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => { timer = setTimeout(r, 10_000); })]);
    clearTimeout(timer);
  } finally {
    if (q.exitCode === null && q.signalCode === null) {
      q.kill('SIGKILL');
      await exited;
    }
    await un.close();
    bridge.close();
    for (const s of sinkSockets) s.destroy();
    await new Promise((r) => web.close(r));
    await new Promise((r) => sink.close(r));
  }
});

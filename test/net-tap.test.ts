// TAP backend: inside a network namespace made by the test (a TAP device with an
// address), the guest and the namespace exchange pings and a TCP stream.
// Needs root, iproute2 and /dev/net/tun; skipped otherwise.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildConsole } from './lib/vm-console.js';
import { tapRelayPath } from '../src/net/tap.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const NS = `tsvtap${process.pid}`;

function canRun(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  if (spawnSync('ip', ['-V']).status !== 0) return 'no iproute2';
  if (!existsSync(tapRelayPath())) return 'build/tap-relay not built';
  return null;
}
const skip = canRun();

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

after(() => {
  if (!skip) spawnSync('ip', ['netns', 'delete', NS]);
});

/** A TCP server inside the namespace: receives `size` bytes and prints their sha256. */
const SERVER = `
const net = require('net'); const crypto = require('crypto');
const size = Number(process.argv[1]);
const srv = net.createServer((s) => {
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (b) => { h.update(b); n += b.length; if (n >= size) { console.log('GOT ' + n + ' ' + h.digest('hex')); s.end(); srv.close(); } });
});
srv.listen(5000, '10.77.0.1', () => console.log('LISTENING'));
`;

test('TAP in a network namespace: ping and a TCP stream', { skip: skip ?? false, timeout: budget(400_000) }, async () => {
  ip('netns', 'add', NS);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  ip('-n', NS, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap');
  ip('-n', NS, 'addr', 'add', '10.77.0.1/24', 'dev', 'tap0');
  ip('-n', NS, 'link', 'set', 'tap0', 'up');

  // Built (or found) outside the namespace, which has no route to any package mirror.
  const guest = await ensureDefaultGuest({});
  const size = 256 * 1024;
  const server = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', SERVER, String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let serverOut = '';
  server.stdout!.on('data', (b: Buffer) => (serverOut += b.toString()));
  const child = spawn(
    'ip',
    ['netns', 'exec', NS, process.execPath, CLI, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--mem', '128M', '--net', 'tap,ifname=tap0,mac=52:54:00:77:00:02', '--append', 'console=ttyS0 tsvisor.dhcp=off'],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const c = new ChildConsole(child);
  try {
    await c.waitFor(/tsvisor guest ready/, 300_000);
    await c.waitFor(/# /, 30_000);
    await c.run('ip addr add 10.77.0.2/24 dev eth0');
    const ping = await c.run('ping -c 3 -W 5 10.77.0.1', 60_000);
    assert.match(ping, /3 packets transmitted, 3 packets received/);
    // The namespace pings back (the guest answers ICMP itself).
    if (spawnSync('sh', ['-c', 'command -v ping']).status === 0) {
      const back = spawnSync('ip', ['netns', 'exec', NS, 'ping', '-c', '2', '-W', '5', '10.77.0.2'], { encoding: 'utf8' });
      assert.equal(back.status, 0, back.stdout + back.stderr);
    }

    // The guest makes random data, hashes it and streams it to the namespace over TCP.
    const sum = await c.run(`dd if=/dev/urandom of=/tmp/x bs=1024 count=${size / 1024} 2>/dev/null; sha256sum /tmp/x`);
    const want = /([0-9a-f]{64})\s+\/tmp\/x/.exec(sum)?.[1];
    assert.ok(want, `no checksum in: ${sum}`);
    await c.run('nc 10.77.0.1 5000 < /tmp/x', 120_000);
    const end = Date.now() + 60_000;
    while (!serverOut.includes('GOT') && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.match(serverOut, new RegExp(`GOT ${size} ${want}`));
  } finally {
    c.type('poweroff -f');
    const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await c.exited;
    clearTimeout(t);
    server.kill();
  }
});

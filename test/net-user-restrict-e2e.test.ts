// The host stays closed to a real guest by default: `tsvisor run --net user`
// boots the default guest, whose busybox wget cannot reach an HTTP server on
// the host's loopback through the gateway, nor one on the host's LAN address,
// but reaches a third one through a guestfwd address. A hostfwd without a
// host address serves the guest's httpd on 127.0.0.1 only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildConsole } from './lib/vm-console.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';
import { freePort } from './lib/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');

function lanAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

interface Web {
  server: http.Server;
  port: number;
  hits: number;
}

async function web(host: string, body: string): Promise<Web> {
  const w: Web = { server: http.createServer(), port: 0, hits: 0 };
  w.server.on('request', (_req, res) => {
    w.hits++;
    res.end(body);
  });
  await new Promise<void>((r) => w.server.listen(0, host, () => r()));
  w.port = (w.server.address() as net.AddressInfo).port;
  return w;
}

function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path: '/index.html', timeout: 10_000 }, (res) => {
        let body = '';
        res.on('data', (b) => (body += b));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

test('a guest reaches the host only through guestfwd; hostfwd listens on the loopback', { timeout: budget(600_000) }, async () => {
  const guest = await ensureDefaultGuest({});
  const lan = lanAddress();
  const loop = await web('127.0.0.1', 'loopback-secret');
  const onLan = await web('0.0.0.0', 'lan-secret');
  const target = await web('127.0.0.1', 'through-guestfwd');
  const fwdPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      CLI, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--mem', '128M',
      '--net', `user,guestfwd=tcp:10.0.2.100:80-127.0.0.1:${target.port},hostfwd=tcp::${fwdPort}-:80`,
    ],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const c = new ChildConsole(child);
  try {
    await c.waitFor(/tsvisor guest ready/, 300_000);
    await c.waitFor(/tsvisor guest: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/, 60_000);

    // The gateway is not the host's loopback: the connection is refused at once (a RST).
    const gw = await c.run(`wget -q -T 10 -O - http://10.0.2.2:${loop.port}/`, 60_000);
    assert.match(gw, /refused/i);
    assert.doesNotMatch(gw, /loopback-secret/);
    if (lan) {
      // Nor is the host's own LAN address a way around it.
      const byLan = await c.run(`wget -q -T 10 -O - http://${lan}:${onLan.port}/`, 60_000);
      assert.match(byLan, /refused/i);
      assert.doesNotMatch(byLan, /lan-secret/);
    }
    assert.equal(loop.hits + onLan.hits, 0, 'no request reached the host servers');

    // guestfwd: the one way in that was asked for.
    const fwd = await c.run('wget -q -T 10 -O - http://10.0.2.100/', 60_000);
    assert.match(fwd, /through-guestfwd/);
    assert.match(fwd, /status 0/);

    // hostfwd without a host address: on 127.0.0.1, not on the LAN address.
    await c.run('mkdir -p /www && echo hello-from-the-guest > /www/index.html && httpd -p 80 -h /www');
    assert.equal((await httpGet('127.0.0.1', fwdPort)).trim(), 'hello-from-the-guest');
    if (lan) await assert.rejects(httpGet(lan, fwdPort), /ECONNREFUSED/);

    c.type('poweroff -f');
    assert.equal(await c.exited, 0);
  } finally {
    child.kill('SIGKILL');
    for (const w of [loop, onLan, target]) w.server.close();
  }
});

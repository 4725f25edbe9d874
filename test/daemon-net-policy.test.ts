// The daemon's network policy. API requests whose NICs would listen on
// 0.0.0.0 or a privileged port, connect to host ports the policy does not
// open, or touch the daemon's own TCP API port are refused with 403 and a
// message naming the field. Then a real daemon (`tsvisor serve --listen
// 127.0.0.1:PORT --token-file F`) runs the default guest with host-loopback:
// the guest reaches a test server on the host's loopback but not the daemon's
// API port, which answers the host all along.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, makeImages, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';
import { freePort } from './lib/free-port.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const TOKEN = 'net-policy-test-token-0123456789';

const vm = (name: string, nic: object) => ({ name, memory: 16, kernel: 'idle', nics: [{ mode: 'user', ...nic }] });

async function expect403(d: TestDaemon, body: object, re: RegExp): Promise<void> {
  const r = await api(d, 'POST', '/v1/vms', body);
  assert.equal(r.status, 403, `${JSON.stringify(body)}: ${r.text}`);
  assert.match(r.json.error, re);
  assert.equal((await api(d, 'GET', `/v1/vms/${(body as { name: string }).name}`)).status, 404, 'nothing was defined');
}

describe('the default policy', () => {
  let d: TestDaemon;
  after(() => d?.cleanup());

  test('hostfwd on 0.0.0.0, on a privileged port, guestfwd and host-loopback are refused; loopback hostfwd is fine', async () => {
    d = await startTestDaemon({ listen: { host: '127.0.0.1', port: 0 }, token: TOKEN });
    await expect403(d, vm('a', { hostfwd: ['tcp:0.0.0.0:8080-:80'] }), /^nics\[0\]\.hostfwd\[0\]: listening on 0\.0\.0\.0:8080: 0\.0\.0\.0 \(every host address\) needs a rule naming 0\.0\.0\.0 itself \(the daemon's network policy, tsvisor serve --allow-hostfwd\)$/);
    await expect403(d, vm('a', { hostfwd: ['tcp:127.0.0.1:8080-:80', 'tcp::80-:80'] }), /^nics\[0\]\.hostfwd\[1\]: listening on 127\.0\.0\.1:80: privileged port 80 needs a rule whose port range names it/);
    await expect403(d, vm('a', { guestfwd: ['tcp:10.0.2.100:80-127.0.0.1:8080'] }), /^nics\[0\]\.guestfwd\[0\]: connecting to 127\.0\.0\.1:8080 is not covered by any rule \(the daemon's network policy, tsvisor serve --allow-guestfwd\)$/);
    await expect403(d, vm('a', { hostLoopback: true }), /^nics\[0\]\.hostLoopback: the host's loopback is not open to VMs/);
    await expect403(d, vm('a', { hostfwd: [`tcp:127.0.0.1:${d.tcp!.port}-:80`] }), /^nics\[0\]\.hostfwd\[0\]: host port \d+ is the daemon's API port$/);
    // Wrong shapes stay 400s.
    const wrong = await api(d, 'POST', '/v1/vms', { name: 'a', memory: 16, kernel: 'idle', nics: [{ mode: 'switch', switch: 'x', hostLoopback: true }] });
    assert.equal(wrong.status, 400, wrong.text);
    assert.match(wrong.json.error, /^nics\[0\]: hostfwd, guestfwd, allow and hostLoopback are options of user NICs$/);
    const bad = await api(d, 'POST', '/v1/vms', vm('a', { guestfwd: ['udp:10.0.2.100:53-127.0.0.1:53'] }));
    assert.equal(bad.status, 400, bad.text);

    const fine = await api(d, 'POST', '/v1/vms', vm('ok', { hostfwd: ['tcp::0-:80'], hostLoopback: false }));
    assert.equal(fine.status, 201, fine.text);
    assert.equal((await api(d, 'POST', '/v1/vms/ok/start')).status, 200);
    const stats = (await api(d, 'GET', '/v1/vms/ok/stats')).json;
    assert.match(stats.devices.nics[0].backend, /^user /);
    assert.equal((await api(d, 'DELETE', '/v1/vms/ok?force=true')).status, 204);
  });
});

describe('a policy with consent', () => {
  let d: TestDaemon;
  after(() => d?.cleanup());

  test('named 0.0.0.0 and privileged ports are accepted; the API port is still refused to guestfwd', async () => {
    d = await startTestDaemon({
      listen: { host: '127.0.0.1', port: 0 },
      token: TOKEN,
      netPolicy: { listen: ['0.0.0.0:8080', '127.0.0.1:1-65535'], connect: ['127.0.0.1:1-65535'], protectedPorts: [] },
    });
    for (const [name, nic] of [
      ['all', { hostfwd: ['tcp:0.0.0.0:8080-:80'] }],
      ['low', { hostfwd: ['tcp::80-:80'] }],
      ['gf', { guestfwd: ['tcp:10.0.2.100:80-127.0.0.1:22'], hostLoopback: true }],
    ] as const) {
      const r = await api(d, 'POST', '/v1/vms', vm(name, nic));
      assert.equal(r.status, 201, `${name}: ${r.text}`);
    }
    await expect403(d, vm('api', { guestfwd: [`tcp:10.0.2.100:80-127.0.0.1:${d.tcp!.port}`] }), /^nics\[0\]\.guestfwd\[0\]: 127\.0\.0\.1:\d+ is the daemon's API port$/);
    await expect403(d, vm('api', { hostfwd: [`tcp:127.0.0.1:${d.tcp!.port}-:80`] }), /daemon's API port/);
    await expect403(d, vm('other', { hostfwd: ['tcp:0.0.0.0:8081-:80'] }), /listening on 0\.0\.0\.0:8081/);
  });

  test('serve refuses a bad rule as a usage error', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--allow-guestfwd', 'localhost:80'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim(), 'tsvisor: --allow-guestfwd: bad rule "localhost:80": "localhost" is not an IPv4 address or CIDR block');
  });
});

test('a guest with host-loopback reaches a host server but never the daemon API port', { timeout: budget(600_000) }, async () => {
  const { dir, images } = await makeImages(true);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const apiPort = await freePort();
  const sock = join(dir, 's.sock');
  const web = http.createServer((_q, res) => res.end('host-web-page'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  const webPort = (web.address() as net.AddressInfo).port;
  const daemon = spawn(
    process.execPath,
    [
      CLI, 'serve', '--socket', sock, '--state-dir', join(dir, 'state'), '--images-dir', images, '--cpus', '1', '--memory-budget', '1G',
      '--listen', `127.0.0.1:${apiPort}`, '--token-file', tokenFile, '--allow-guestfwd', '127.0.0.1:1-65535',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  daemon.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  let con: ConsoleClient | null = null;
  try {
    await until('daemon up', () => /listening on /.test(err) || daemon.exitCode !== null, 20_000);
    assert.equal(daemon.exitCode, null, err);
    const d = { socketPath: sock };
    const created = await api(d, 'POST', '/v1/vms', { name: 'g', memory: 128, kernel: 'vmlinux', initrd: 'initrd', nics: [{ mode: 'user', hostLoopback: true }] });
    assert.equal(created.status, 201, created.text);
    assert.equal((await api(d, 'POST', '/v1/vms/g/start')).status, 200);
    con = await ConsoleClient.open(sock, 'g');
    await con.waitFor(READY_LINE, 300_000);
    await con.waitFor(/tsvisor guest: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/, 60_000);
    // A line typed before the shell's first prompt is echoed and lost (the guest's tty, as under QEMU).
    await con.waitFor('# ', 60_000, con.output.indexOf(READY_LINE));
    const c = con;
    let n = 0;
    const run = async (cmd: string): Promise<string> => {
      const tag = `DONE${n++}X`;
      const from = c.output.length;
      c.send(`${cmd}; echo ${tag.slice(0, 2)}""${tag.slice(2)} $?\n`);
      await c.waitFor(new RegExp(`${tag} \\d+`), 60_000, from);
      return c.output.slice(from);
    };
    const ok = await run(`wget -q -T 10 -O - http://10.0.2.2:${webPort}/`);
    assert.match(ok, /host-web-page/, 'host-loopback=on reaches the host server');
    const denied = await run(`wget -q -T 10 -O - http://10.0.2.2:${apiPort}/v1/vms`);
    assert.match(denied, /refused/i, denied);
    assert.doesNotMatch(denied, /"vms"|bearer/i);
    // The API answers the host on that port all along: the refusal is the guest's alone.
    assert.equal((await api({ port: apiPort, token: TOKEN }, 'GET', '/v1/vms')).status, 200);
    const stats = (await api(d, 'GET', '/v1/vms/g/stats')).json;
    assert.ok(stats.devices.nics[0].host.dropped >= 1, JSON.stringify(stats.devices.nics[0]));
  } finally {
    con?.close();
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.on('exit', r)));
    web.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

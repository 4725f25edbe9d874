// `tsvisor serve --fleet` against a real etcd that speaks only TLS and asks
// every client for a certificate (--client-cert-auth). The test makes its own
// CA and certificates with openssl: a member with --etcd-ca, --etcd-cert and
// --etcd-key joins and keeps its lease; one without a client certificate, one
// trusting another CA, one whose certificate another CA signed, and one
// speaking plain HTTP are stopped at start with the reason.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, makeImages, until } from './daemon-helpers.js';
import { EtcdCluster, etcdBinary, type EtcdTls } from './lib/etcd.js';
import { FLEET_TOKEN } from './lib/fleet-daemons.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
const skip = etcdBinary() === null ? 'etcd is not installed (Debian: etcd-server)' : !hasOpenssl ? 'openssl is not installed' : false;
let dir = '';
let images = '';
let etcd: EtcdCluster;
let tls: EtcdTls;
let other: { ca: string; clientCert: string; clientKey: string };
const children: ReturnType<typeof spawn>[] = [];

function openssl(...args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA (self-signed, P-256) named `name` in the test directory. */
function makeCa(name: string): string {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
  return join(dir, `${name}.pem`);
}

/** A certificate for `name` signed by CA `ca`, for a server (IP 127.0.0.1) or a client. */
function makeCert(ca: string, name: string, usage: 'serverAuth' | 'clientAuth'): { cert: string; key: string } {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${usage === 'serverAuth' ? 'subjectAltName=IP:127.0.0.1\n' : ''}extendedKeyUsage=${usage}\nkeyUsage=digitalSignature\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tsvisor-fleet-tls-'));
  images = (await makeImages(false)).images;
  const ca = makeCa('fleet-ca');
  const server = makeCert('fleet-ca', 'etcd-server', 'serverAuth');
  const client = makeCert('fleet-ca', 'member', 'clientAuth');
  tls = { ca, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
  const otherCa = makeCa('other-ca');
  const stranger = makeCert('other-ca', 'stranger', 'clientAuth');
  other = { ca: otherCa, clientCert: stranger.cert, clientKey: stranger.key };
  writeFileSync(join(dir, 'token'), FLEET_TOKEN, { mode: 0o600 });
  etcd = await EtcdCluster.start(join(dir, 'etcd'), 1, tls);
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await etcd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (images) rmSync(join(images, '..'), { recursive: true, force: true });
});

const serveArgs = (name: string, extra: string[]) => [
  CLI, 'serve', '--state-dir', join(dir, name), '--socket', join(dir, `${name}.sock`), '--images-dir', images, '--listen', '127.0.0.1:0',
  '--token-file', join(dir, 'token'), '--memory-budget', '256M', '--cpus', '1', '--host-name', name, '--lease', '4', ...extra,
];

/** Start a member; resolves with its stderr once it listens or has exited. */
async function serve(name: string, extra: string[]): Promise<{ child: ReturnType<typeof spawn>; stderr: () => string }> {
  const child = spawn(process.execPath, serveArgs(name, extra), { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await until(`${name} to listen or stop`, () => /listening on /.test(err) || child.exitCode !== null, 60_000);
  return { child, stderr: () => err };
}

async function refused(name: string, extra: string[]): Promise<string> {
  const { child, stderr } = await serve(name, extra);
  await until(`${name} to stop`, () => child.exitCode !== null, 60_000);
  assert.notEqual(child.exitCode, 0, stderr());
  assert.match(stderr(), /cannot join the fleet at https:\/\/127\.0\.0\.1:\d+/);
  assert.match(stderr(), /check --etcd-ca, --etcd-cert and --etcd-key/);
  // One line: the reason, no stack and no warning from the TLS layer.
  assert.equal(stderr().trim().split('\n').length, 1, stderr());
  return stderr();
}

test('members join an etcd that requires TLS client certificates with --etcd-ca, --etcd-cert and --etcd-key, and keep their leases', { skip, timeout: budget(120_000) }, async () => {
  const ep = etcd.endpoints[0]!;
  assert.match(ep, /^https:/);
  const opts = ['--fleet', ep, '--etcd-ca', tls.ca, '--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey];
  for (const name of ['t1', 't2']) {
    const { child, stderr } = await serve(name, opts);
    assert.equal(child.exitCode, null, stderr());
    assert.match(stderr(), new RegExp(`member '${name}' of the fleet`), stderr());
  }
  const sock = { socketPath: join(dir, 't1.sock') };
  let names: string[] = [];
  await until('both members listed', async () => {
    const r = await api(sock, 'GET', '/v1/fleet/hosts');
    names = r.status === 200 ? (r.json as { name: string; alive: boolean }[]).filter((h) => h.alive).map((h) => h.name).sort() : [];
    return names.join(',') === 't1,t2';
  }, 30_000, 100, () => names.join(','));
  // Keep-alives go through over TLS: after two lease times both are still there, heartbeats counted.
  await new Promise((r) => setTimeout(r, 8_000));
  const m = (await api(sock, 'GET', '/metrics')).text;
  assert.match(m, /^tsvisor_fleet_lease_held 1/m);
  assert.ok(Number(/^tsvisor_fleet_heartbeats_total (\d+)/m.exec(m)?.[1]) >= 4, m.match(/^tsvisor_fleet_.*/gm)?.join('\n'));
  const hosts = (await api(sock, 'GET', '/v1/fleet/hosts')).json as { name: string; alive: boolean }[];
  assert.deepEqual(hosts.filter((h) => h.alive).map((h) => h.name).sort(), ['t1', 't2']);
  // Placement through the TLS connection.
  const p = await api(sock, 'POST', '/v1/fleet/vms', { vm: { name: 'over-tls', memory: 16, kernel: 'idle' } });
  assert.equal(p.status, 201, p.text);
});

test('a member without the right certificates is refused by a TLS etcd and stops with the reason', { skip, timeout: budget(180_000) }, async () => {
  const ep = etcd.endpoints[0]!;
  // No client certificate: etcd asks for one.
  await refused('n1', ['--fleet', ep, '--etcd-ca', tls.ca]);
  // Trusting another CA: etcd's certificate does not verify.
  await refused('n2', ['--fleet', ep, '--etcd-ca', other.ca, '--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey]);
  // A client certificate from another CA: etcd does not trust it.
  await refused('n3', ['--fleet', ep, '--etcd-ca', tls.ca, '--etcd-cert', other.clientCert, '--etcd-key', other.clientKey]);
  // No --etcd-ca for an https:// endpoint: the system's CAs are used, and they do not know the test CA.
  await refused('n5', ['--fleet', ep]);
  // Plain HTTP to the TLS port.
  const plain = await serve('n4', ['--fleet', ep.replace(/^https:/, 'http:')]);
  await until('n4 to stop', () => plain.child.exitCode !== null, 60_000);
  assert.notEqual(plain.child.exitCode, 0);
  assert.match(plain.stderr(), /cannot join the fleet at http:\/\/127\.0\.0\.1:\d+/);
});

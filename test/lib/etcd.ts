// Real etcd for the fleet tests and bench: one member or a three-member
// cluster on loopback ports with temporary data directories, ready once every
// member answers /health; and a TCP proxy the test can cut to partition one
// daemon from etcd without network namespaces.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './free-port.js';
export { freePort } from './free-port.js';

/** The etcd binary, or null when it is not installed (Debian: etcd-server). */
export function etcdBinary(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v etcd']);
  return r.status === 0 ? r.stdout.toString().trim() : null;
}

/**
 * TLS on etcd's client port (PEM files): its certificate and key, and the CA
 * it trusts for client certificates (it then asks every client for one). The
 * client pair is what the harness itself checks /health with.
 */
export interface EtcdTls {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  child: ChildProcess | null;
  log: string;
}

export class EtcdCluster {
  private constructor(readonly members: EtcdMember[], private readonly initialCluster: string, private readonly tls?: EtcdTls) {}

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** Start `size` members under `dir` and wait until each answers /health. */
  static async start(dir: string, size = 1, tls?: EtcdTls): Promise<EtcdCluster> {
    const members: EtcdMember[] = [];
    for (let i = 0; i < size; i++) {
      const name = `etcd${i}`;
      const clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${await freePort()}`;
      members.push({ name, clientUrl, peerUrl: `http://127.0.0.1:${await freePort()}`, dataDir: join(dir, name), child: null, log: '' });
    }
    const c = new EtcdCluster(members, members.map((m) => `${m.name}=${m.peerUrl}`).join(','), tls);
    for (const m of members) c.spawnMember(m, 'new');
    await Promise.all(members.map((m) => c.waitHealthy(m)));
    return c;
  }

  private spawnMember(m: EtcdMember, state: 'new' | 'existing'): void {
    mkdirSync(m.dataDir, { recursive: true });
    const child = spawn(etcdBinary() ?? 'etcd', [
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', this.initialCluster, '--initial-cluster-state', state,
      '--initial-cluster-token', 'tsvisor-test',
      // Fast elections on loopback: the tests wait on them.
      '--heartbeat-interval', '100', '--election-timeout', '1000',
      ...(this.tls ? ['--cert-file', this.tls.serverCert, '--key-file', this.tls.serverKey, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : []),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    m.log = '';
    const keep = (d: Buffer) => {
      m.log = (m.log + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    m.child = child;
  }

  private async waitHealthy(m: EtcdMember): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      try {
        const j = JSON.parse(await this.getHealth(m.clientUrl)) as { health?: string };
        if (j.health === 'true') return;
      } catch {
        // not up yet
      }
      if (m.child?.exitCode !== null) throw new Error(`etcd ${m.name} exited: ${m.log.slice(-2000)}`);
      if (Date.now() > end) throw new Error(`etcd ${m.name} not healthy after 60 s: ${m.log.slice(-2000)}`);
      await delay(100);
    }
  }

  private async getHealth(clientUrl: string): Promise<string> {
    if (!this.tls) return (await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) })).text();
    const t = this.tls;
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${clientUrl}/health`, { ca: readFileSync(t.ca), cert: readFileSync(t.clientCert), key: readFileSync(t.clientKey), timeout: 2000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  }

  /** Stop a member (SIGTERM, then SIGKILL) and wait for it to exit. */
  async stopMember(i: number): Promise<void> {
    const m = this.members[i]!;
    const child = m.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    m.child = null;
  }

  /** Start a stopped member again with its data. */
  async restartMember(i: number): Promise<void> {
    const m = this.members[i]!;
    this.spawnMember(m, 'existing');
    await this.waitHealthy(m);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i)));
  }
}

/**
 * A loopback TCP proxy to `target` ("host:port"). cut() drops every open
 * connection and refuses new ones (a partition); heal() accepts again on the
 * same port.
 */
export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly targetHost: string, private readonly targetPort: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    const s = createServer((c) => {
      const up = connect(this.targetPort, this.targetHost);
      this.sockets.add(c);
      this.sockets.add(up);
      const drop = () => {
        c.destroy();
        up.destroy();
        this.sockets.delete(c);
        this.sockets.delete(up);
      };
      c.on('error', drop).on('close', drop);
      up.on('error', drop).on('close', drop);
      c.pipe(up);
      up.pipe(c);
    });
    await new Promise<void>((r, j) => {
      s.once('error', j);
      s.listen(this.port, '127.0.0.1', () => r());
    });
    this.port = (s.address() as { port: number }).port;
    this.server = s;
  }

  async cut(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const c of this.sockets) c.destroy();
    this.sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  heal(): Promise<void> {
    return this.listen();
  }
}

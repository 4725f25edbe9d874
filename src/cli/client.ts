// Client commands that talk to `tsvisor serve`: create, start, pause, resume,
// stop, kill, rm, ls, inspect, console, logs, stats. The daemon is reached on
// its Unix socket (default, or --socket) or at --url with --token-file.

import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { parseOptions, UsageError, UserError, type MainIo } from './args.js';
import { parseDiskSpec } from './disk-spec.js';
import { parseMemSize } from '../common/size.js';
import { defaultSocketPath } from './daemon-paths.js';

export const CLIENT_COMMANDS = ['create', 'start', 'pause', 'resume', 'stop', 'reboot', 'kill', 'rm', 'ls', 'inspect', 'console', 'logs', 'stats', 'snapshot', 'snapshots', 'rm-snapshot', 'gdb'];

export const CLIENT_HELP = `Usage: tsvisor <command> [daemon options] ...

Commands that talk to a running 'tsvisor serve':
  create NAME [options]   define a VM (see below), or --config FILE.json
  start|pause|resume|kill NAME
  stop NAME [--timeout S] graceful stop: the guest's power button, then a hard
                          stop after S seconds (default 30; 0 = at once)
  reboot NAME [--timeout S]  graceful reboot: the restart key, then a reset
  rm NAME [--force]       delete a VM (--force: kill it first if running)
  ls                      list VMs
  inspect NAME            the VM's definition and state (JSON)
  console NAME            attach this terminal to the VM's console (C-a x detaches)
  logs NAME               print the VM's console log
  stats [NAME]            VM or host statistics (JSON)
  snapshot NAME DIR [--disk-overlay]
                          snapshot the running VM into DIR, a name inside the
                          daemon's state directory (snapshots/DIR); --disk-overlay
                          freezes its writable disks: the VM goes on writing a new
                          qcow2 overlay (IMAGE.DIR.qcow2 next to each image)
  snapshots               list the daemon's snapshots
  rm-snapshot NAME        delete a snapshot no VM is defined from
  clone --daemon SNAP --count N [--prefix P] [--no-start]
                          define (and start) N clones of a daemon snapshot
  gdb NAME --listen HOST:PORT
                          bridge the VM's GDB stub (created with --gdb) to a
                          local port: gdb-multiarch's "target remote HOST:PORT"

Daemon options:
  --socket PATH           the daemon's Unix socket (default as 'tsvisor serve')
  --url URL               reach the daemon over TCP instead (http://HOST:PORT)
  --token-file FILE       bearer token for --url

Create options:
  --kernel FILE --initrd FILE --append STRING
                          files are taken inside the daemon's images directory
  --mem SIZE              guest RAM (default 512M)
  --system-map FILE       the kernel's System.map (default: one next to the kernel);
                          a kernel panic then fails the VM
  --stall-timeout SECS    fail a guest stalled this long (default 60, 0 = off)
  --disk PATH[,format=raw|qcow2][,readonly=on][,serial=S]   (repeatable)
  --root-disk             boot from the first disk (root=/dev/vda)
  --cpu-weight N          CPU shares, 2..262144 (default 1024)
  --cpu-cap F             at most this many host cores for all its harts (e.g. 0.5;
                          up to its hart count and the daemon's --cpus)
  --deterministic         guest time follows the instruction count
  --cpus N                harts (virtual CPUs), 1..8 (default 1)
  --hart-threads on|off   with several harts: each on a host thread of its own
                          (default on; off: they take turns on the VM's thread,
                          as they always do with --deterministic and --gdb)
  --gdb                   a GDB stub (attach with 'tsvisor gdb NAME --listen')
  --jit on|off            translate hot guest code (default on)
  --restart POLICY[:N]    no, on-failure[:max retries] or always
  --isolation thread|process
                          run the VM in a worker thread of the daemon (default)
                          or in its own child process
  --snapshot NAME         start from a snapshot taken with 'tsvisor snapshot'
                          (--mem and --deterministic must match it)
  --start                 start the VM once created
`;

interface Target {
  socketPath?: string;
  url?: URL;
  token?: string;
  where: string;
}

interface Reply {
  status: number;
  body: Buffer;
}

function daemonOptions() {
  return {
    socket: { type: 'string' },
    url: { type: 'string' },
    'token-file': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  } as const;
}

export function target(values: { socket?: string; url?: string; 'token-file'?: string }): Target {
  if (values.url !== undefined) {
    let url: URL;
    try {
      url = new URL(values.url);
    } catch {
      throw new UsageError(`invalid --url '${values.url}': expected http://HOST:PORT`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`invalid --url '${values.url}': expected http:// or https://`);
    let token: string | undefined;
    if (values['token-file'] !== undefined) {
      try {
        token = readFileSync(values['token-file'], 'utf8').trim();
      } catch (e) {
        throw new UserError(`cannot read the token file ${values['token-file']}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    }
    return { url, token, where: url.origin };
  }
  const socketPath = resolvePath(values.socket ?? defaultSocketPath());
  return { socketPath, where: socketPath };
}

export function call(t: Target, method: string, path: string, body?: unknown): Promise<Reply> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string | number> = {};
  if (data) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = data.length;
  }
  if (t.token) headers.authorization = `Bearer ${t.token}`;
  const opts: RequestOptions = { method, headers };
  let req;
  if (t.url) {
    const u = new URL(path, t.url);
    req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, opts);
  } else {
    req = httpRequest({ ...opts, socketPath: t.socketPath, path });
  }
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      reject(new UserError(`cannot reach the daemon at ${t.where} (${e.code ?? e.message}); is 'tsvisor serve' running?`));
    });
    req.end(data);
  });
}

/** The reply's JSON, or a UserError carrying the daemon's message. */
export function expectOk(r: Reply): unknown {
  if (r.status >= 200 && r.status < 300) {
    if (r.body.length === 0) return null;
    return JSON.parse(r.body.toString('utf8')) as unknown;
  }
  let msg = r.body.toString('utf8');
  try {
    msg = (JSON.parse(msg) as { error?: string }).error ?? msg;
  } catch {
    // not JSON: show as is
  }
  throw new UserError(`${msg} (HTTP ${r.status})`);
}

function oneName(positionals: string[], cmd: string): string {
  if (positionals.length === 0) throw new UsageError(`'tsvisor ${cmd}' needs a VM name`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' for 'tsvisor ${cmd}'`);
  return positionals[0];
}

export const vmPath = (name: string, rest = '') => `/v1/vms/${encodeURIComponent(name)}${rest}`;

export async function clientCommand(cmd: string, args: string[], io: MainIo): Promise<number> {
  if (cmd === 'create') return createCommand(args, io);
  if (cmd === 'gdb') return gdbCommand(args, io);
  // --force is only meaningful for rm, --timeout for stop and reboot, --disk-overlay for snapshot; other commands refuse them.
  const { values, positionals } = parseOptions(`tsvisor ${cmd}`, args, { ...daemonOptions(), force: { type: 'boolean', short: 'f' }, timeout: { type: 'string' }, 'disk-overlay': { type: 'boolean' } }, true);
  if (values.force !== undefined && cmd !== 'rm') throw new UsageError(`unknown option '--force' for 'tsvisor ${cmd}'`);
  if (values.timeout !== undefined && cmd !== 'stop' && cmd !== 'reboot') throw new UsageError(`unknown option '--timeout' for 'tsvisor ${cmd}'`);
  if (values['disk-overlay'] !== undefined && cmd !== 'snapshot') throw new UsageError(`unknown option '--disk-overlay' for 'tsvisor ${cmd}'`);
  let timeout: number | undefined;
  if (values.timeout !== undefined) {
    timeout = Number(values.timeout);
    if (!/^\d+$/.test(values.timeout) || timeout > 3600) throw new UsageError(`invalid --timeout '${values.timeout}': whole seconds from 0 to 3600`);
  }
  if (values.help) {
    io.stdout.write(CLIENT_HELP);
    return 0;
  }
  const t = target(values);
  switch (cmd) {
    case 'ls': {
      if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' for 'tsvisor ls'`);
      const vms = expectOk(await call(t, 'GET', '/v1/vms')) as { name: string; state: string; isolation?: string; config: { memory: number; cpu?: { weight?: number; cap?: number } } | null; lastFailure: string | null; reason?: string }[];
      const rows = [['NAME', 'STATE', 'MEMORY', 'WEIGHT', 'CAP', 'ISOLATION', 'LAST FAILURE']];
      for (const v of vms) {
        // A broken VM (a stored definition that failed its checks) has no config, only a reason.
        if (!v.config) {
          rows.push([v.name, v.state, '-', '-', '-', '-', v.reason ?? '-']);
          continue;
        }
        rows.push([v.name, v.state, `${v.config.memory}M`, String(v.config.cpu?.weight ?? 1024), v.config.cpu?.cap === undefined ? '-' : String(v.config.cpu.cap), v.isolation ?? 'thread', v.lastFailure ?? '-']);
      }
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      for (const r of rows) io.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}\n`);
      return 0;
    }
    case 'stats': {
      if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' for 'tsvisor stats'`);
      const path = positionals.length === 0 ? '/v1/host/stats' : vmPath(positionals[0], '/stats');
      io.stdout.write(`${JSON.stringify(expectOk(await call(t, 'GET', path)), null, 2)}\n`);
      return 0;
    }
    case 'inspect': {
      const name = oneName(positionals, cmd);
      io.stdout.write(`${JSON.stringify(expectOk(await call(t, 'GET', vmPath(name))), null, 2)}\n`);
      return 0;
    }
    case 'logs': {
      const name = oneName(positionals, cmd);
      const r = await call(t, 'GET', vmPath(name, '/log'));
      if (r.status !== 200) expectOk(r);
      io.stdout.write(r.body);
      return 0;
    }
    case 'rm': {
      const name = oneName(positionals, cmd);
      expectOk(await call(t, 'DELETE', vmPath(name, values.force ? '?force=true' : '')));
      return 0;
    }
    case 'console':
      return consoleCommand(t, oneName(positionals, cmd), io);
    case 'snapshot': {
      if (positionals.length !== 2) throw new UsageError("'tsvisor snapshot' needs a VM name and a snapshot name");
      const [name, dir] = positionals;
      const body = values['disk-overlay'] ? { dir, diskOverlay: true } : { dir };
      const r = expectOk(await call(t, 'PUT', vmPath(name, '/snapshot'), body)) as { dir: string; instret: number; dataPages: number; ms: number; overlays?: { disk: number; path: string }[] };
      io.stdout.write(`${name}: snapshot ${r.dir} at instruction ${r.instret} (${r.dataPages} pages, ${Math.round(r.ms)} ms)\n`);
      for (const o of r.overlays ?? []) io.stdout.write(`${name}: disk ${o.disk} frozen; the VM now writes ${o.path}\n`);
      return 0;
    }
    case 'snapshots': {
      if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}' for 'tsvisor snapshots'`);
      const snaps = expectOk(await call(t, 'GET', '/v1/snapshots')) as { name: string; createdAt?: string; memory?: number; usedBy: string[]; error?: string }[];
      const rows = [['NAME', 'CREATED', 'MEMORY', 'USED BY']];
      for (const sn of snaps) rows.push([sn.name, sn.createdAt ?? '-', sn.memory === undefined ? '-' : `${sn.memory}M`, sn.error ? `unreadable: ${sn.error}` : sn.usedBy.join(',') || '-']);
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      for (const r of rows) io.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}\n`);
      return 0;
    }
    case 'rm-snapshot': {
      if (positionals.length !== 1) throw new UsageError("'tsvisor rm-snapshot' needs one snapshot name");
      expectOk(await call(t, 'DELETE', `/v1/snapshots/${encodeURIComponent(positionals[0])}`));
      return 0;
    }
    default: {
      const name = oneName(positionals, cmd);
      const body = timeout === undefined ? undefined : { timeout };
      const vm = expectOk(await call(t, 'POST', vmPath(name, `/${cmd}`), body)) as { state: string; lastExit?: string | null };
      // A stop says how the guest ended: "guest powered off" after a graceful stop.
      const how = cmd === 'stop' && vm.lastExit ? ` (${vm.lastExit})` : '';
      io.stdout.write(`${name}: ${vm.state}${how}\n`);
      return 0;
    }
  }
}

async function createCommand(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parseOptions(
    'tsvisor create',
    args,
    {
      ...daemonOptions(),
      config: { type: 'string' },
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      'system-map': { type: 'string' },
      'stall-timeout': { type: 'string' },
      append: { type: 'string' },
      mem: { type: 'string' },
      disk: { type: 'string', multiple: true },
      'root-disk': { type: 'boolean' },
      'cpu-weight': { type: 'string' },
      'cpu-cap': { type: 'string' },
      deterministic: { type: 'boolean' },
      cpus: { type: 'string' },
      'hart-threads': { type: 'string' },
      gdb: { type: 'boolean' },
      jit: { type: 'string' },
      restart: { type: 'string' },
      isolation: { type: 'string' },
      snapshot: { type: 'string' },
      start: { type: 'boolean' },
    },
    true,
  );
  if (values.help) {
    io.stdout.write(CLIENT_HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' for 'tsvisor create'`);
  let body: Record<string, unknown> = {};
  if (values.config !== undefined) {
    try {
      body = JSON.parse(readFileSync(values.config, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new UserError(`cannot read --config ${values.config}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (positionals[0] !== undefined) body.name = positionals[0];
  if (body.name === undefined) throw new UsageError("'tsvisor create' needs a VM name");
  if (values.kernel !== undefined) body.kernel = values.kernel;
  if (values.initrd !== undefined) body.initrd = values.initrd;
  if (values['system-map'] !== undefined) body.systemMap = values['system-map'];
  if (values['stall-timeout'] !== undefined) {
    const t = values['stall-timeout'];
    if (!/^\d+$/.test(t)) throw new UsageError(`invalid --stall-timeout '${t}': expected whole seconds (0 = off)`);
    body.stallTimeout = Number(t);
  }
  if (values.append !== undefined) body.append = values.append;
  if (values.mem !== undefined || body.memory === undefined) body.memory = parseMemSize(values.mem ?? '512M');
  if (values.disk) {
    body.disks = values.disk.map(parseDiskSpec).map((d) => ({ path: d.path, format: d.format, readonly: d.readOnly || undefined, serial: d.serial }));
  }
  if (values['root-disk']) body.rootDisk = true;
  if (values.snapshot !== undefined) body.snapshot = values.snapshot;
  const cpu = { ...((body.cpu as object | undefined) ?? {}) } as Record<string, number>;
  if (values['cpu-weight'] !== undefined) {
    const w = Number(values['cpu-weight']);
    if (!Number.isInteger(w)) throw new UsageError(`invalid --cpu-weight '${values['cpu-weight']}': expected a whole number`);
    cpu.weight = w;
  }
  if (values['cpu-cap'] !== undefined) {
    const c = Number(values['cpu-cap']);
    if (!Number.isFinite(c)) throw new UsageError(`invalid --cpu-cap '${values['cpu-cap']}': expected host cores, like 0.5`);
    cpu.cap = c;
  }
  if (Object.keys(cpu).length > 0) body.cpu = cpu;
  if (values.deterministic) body.deterministic = true;
  if (values.cpus !== undefined) {
    if (!/^[1-8]$/.test(values.cpus)) throw new UsageError(`invalid --cpus '${values.cpus}': expected 1 to 8`);
    body.cpus = Number(values.cpus);
  }
  if (values['hart-threads'] !== undefined) {
    const v = values['hart-threads'];
    if (v !== 'on' && v !== 'off') throw new UsageError(`invalid --hart-threads '${v}': expected on or off`);
    body.hartThreads = v === 'on';
  }
  if (values.gdb) body.gdb = true;
  if (values.jit !== undefined) {
    if (values.jit !== 'on' && values.jit !== 'off') throw new UsageError(`invalid --jit '${values.jit}': expected on or off`);
    body.jit = values.jit === 'on';
  }
  if (values.restart !== undefined) {
    const m = /^(no|on-failure|always)(?::(\d+))?$/.exec(values.restart);
    if (!m) throw new UsageError(`invalid --restart '${values.restart}': expected no, on-failure[:N] or always[:N]`);
    body.restart = m[2] === undefined ? { policy: m[1] } : { policy: m[1], maxRetries: Number(m[2]) };
  }
  if (values.isolation !== undefined) {
    if (values.isolation !== 'thread' && values.isolation !== 'process') {
      throw new UsageError(`invalid --isolation '${values.isolation}': expected thread or process`);
    }
    body.isolation = values.isolation;
  }
  const t = target(values);
  const vm = expectOk(await call(t, 'POST', '/v1/vms', body)) as { name: string; notes?: string[] };
  for (const n of vm.notes ?? []) io.stderr.write(`tsvisor: note: ${n}\n`);
  if (values.start) expectOk(await call(t, 'POST', vmPath(vm.name, '/start')));
  io.stdout.write(`${vm.name}\n`);
  return 0;
}

/** Attach the terminal to the VM's console over the WebSocket; C-a x detaches (the VM keeps running). */
async function consoleCommand(t: Target, name: string, io: MainIo): Promise<number> {
  const [{ WebSocket }, { attachConsole }, { EventEmitter }] = await Promise.all([
    import('ws'),
    import('./console.js'),
    import('node:events'),
  ]);
  const path = vmPath(name, '/console');
  const url = t.url
    ? `${t.url.protocol === 'https:' ? 'wss' : 'ws'}://${t.url.host}${path}`
    : `ws+unix://${t.socketPath}:${path}`;
  const ws = new WebSocket(url, { headers: t.token ? { authorization: `Bearer ${t.token}` } : {} });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          expectOk({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        } catch (e) {
          reject(e);
        }
      });
    });
    ws.once('error', (e: NodeJS.ErrnoException) =>
      reject(new UserError(`cannot reach the daemon at ${t.where} (${e.code ?? e.message}); is 'tsvisor serve' running?`)),
    );
  });
  // attachConsole drives a VmHandle; this stand-in forwards to the socket, and
  // "stopping" it only detaches: the VM goes on running in the daemon.
  let resolveExit!: (r: { code: number; reason: string }) => void;
  const exited = new Promise<{ code: number; reason: string }>((r) => (resolveExit = r));
  const remote = Object.assign(new EventEmitter(), {
    exited,
    sendInput: (b: Uint8Array) => ws.send(b, { binary: true }),
    stop: () => {
      ws.close(1000, 'detached');
      resolveExit({ code: 0, reason: 'detached' });
      return exited;
    },
  });
  ws.on('message', (d: Buffer) => remote.emit('output', new Uint8Array(d)));
  // The guest's console (hvc0) takes this terminal's size, now and at each change.
  const sendSize = () => {
    const { columns, rows } = process.stdout;
    if (process.stdout.isTTY && columns > 0 && rows > 0 && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: columns, rows }));
  };
  sendSize();
  process.stdout.on('resize', sendSize);
  ws.on('close', () => process.stdout.off('resize', sendSize));
  ws.on('close', (_code: number, reason: Buffer) => resolveExit({ code: 0, reason: reason.toString() || 'closed' }));
  const done = attachConsole(remote as unknown as import('../vm/vm-handle.js').VmHandle, process, { handleProcessEvents: true });
  const code = await done;
  const why = await exited;
  if (why.reason !== 'detached') io.stderr.write(`\ntsvisor: console closed: ${why.reason}\n`);
  return code;
}

/** `tsvisor clone --daemon SNAP --count N [--prefix P] [--no-start]`: clones as daemon VMs. */
export async function daemonCloneCommand(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parseOptions('tsvisor clone', args, {
    ...daemonOptions(),
    daemon: { type: 'boolean' },
    count: { type: 'string' },
    prefix: { type: 'string' },
    'no-start': { type: 'boolean' },
  }, true);
  if (positionals.length !== 1) throw new UsageError("'tsvisor clone --daemon' needs one snapshot name");
  const countText = values.count ?? '1';
  if (!/^\d+$/.test(countText)) throw new UsageError(`invalid --count '${countText}'`);
  const body: Record<string, unknown> = { count: Number(countText) };
  if (values.prefix !== undefined) body.prefix = values.prefix;
  if (values['no-start']) body.start = false;
  const t = target(values);
  const r = expectOk(await call(t, 'POST', `/v1/snapshots/${encodeURIComponent(positionals[0])}/clones`, body)) as { vms: { name: string; state: string }[] };
  for (const vm of r.vms) io.stdout.write(`${vm.name}: ${vm.state}\n`);
  return 0;
}

/**
 * `tsvisor gdb NAME --listen HOST:PORT`: a local TCP port for gdb-multiarch,
 * each connection bridged to the daemon's WebSocket /v1/vms/NAME/gdb (the
 * daemon acknowledges packets and checks the token). Runs until interrupted.
 */
async function gdbCommand(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parseOptions('tsvisor gdb', args, { ...daemonOptions(), listen: { type: 'string' } }, true);
  if (values.help) {
    io.stdout.write(CLIENT_HELP);
    return 0;
  }
  const name = oneName(positionals, 'gdb');
  const { parseGdbAddress } = await import('./gdb-listen.js');
  const addr = values.listen === undefined ? null : parseGdbAddress(values.listen);
  if (!addr) throw new UsageError(`'tsvisor gdb' needs --listen HOST:PORT${values.listen === undefined ? '' : ` (got '${values.listen}')`}`);
  const t = target(values);
  const [{ WebSocket }, { createServer }] = await Promise.all([import('ws'), import('node:net')]);
  const path = vmPath(name, '/gdb');
  const url = t.url ? `${t.url.protocol === 'https:' ? 'wss' : 'ws'}://${t.url.host}${path}` : `ws+unix://${t.socketPath}:${path}`;
  let busy = false;
  const server = createServer((sock) => {
    if (busy) {
      sock.end();
      return;
    }
    busy = true;
    sock.pause();
    const ws = new WebSocket(url, { headers: t.token ? { authorization: `Bearer ${t.token}` } : {} });
    const end = (why?: string) => {
      if (why) io.stderr.write(`tsvisor: gdb: ${why}\n`);
      sock.destroy();
      ws.terminate();
      busy = false;
    };
    ws.once('open', () => {
      sock.on('data', (d: Buffer) => ws.send(d, { binary: true }));
      sock.resume();
    });
    ws.on('message', (d: Buffer) => sock.write(d));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => end(`the daemon refused (${res.statusCode}): ${Buffer.concat(chunks).toString().slice(0, 300)}`));
    });
    ws.on('close', () => end());
    ws.on('error', (e: Error) => end(`cannot reach the daemon at ${t.where}: ${e.message}`));
    sock.on('close', () => end());
    sock.on('error', () => end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new UserError(`cannot listen on ${addr.host}:${addr.port}: ${e.message}`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  io.stderr.write(`tsvisor: gdb for VM '${name}' on ${addr.host}:${addr.port} (Ctrl-C ends)\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  server.close();
  return 0;
}

// The daemon: the HTTP API on a Unix socket (mode 0600) and optionally on TCP
// with a bearer token, the WebSocket console on the same servers, and a clean
// shutdown that stops every VM and removes the socket file.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { Host, type HostOptions } from './registry.js';
import { createMetrics } from './metrics.js';
import { OutgoingMigrations } from './migration-out.js';
import { IncomingMigrations } from './migration-in.js';
import { handle, sendError, type RouteContext } from './routes.js';
import { ApiError } from './validate.js';
import { checkBearer, checkBearerProtocol, chooseProtocol } from './auth.js';
import { attachConsoleSocket, CONSOLE_MAX_MESSAGE_BYTES, DEFAULT_MAX_CONSOLE_CLIENTS } from './console-ws.js';
import { attachGdbSocket, gdbRefusal, GDB_MAX_MESSAGE_BYTES } from './gdb-ws.js';
import { isUiPath, serveUi } from './ui.js';
import { FleetMember, type FleetOptions } from './fleet-member.js';
import { addFleetMetrics } from './metrics.js';

export interface DaemonOptions extends HostOptions {
  socketPath: string;
  /** TCP listener, "HOST:PORT"; needs `token`. */
  listen?: { host: string; port: number };
  token?: string;
  version: string;
  /** Console WebSocket clients per VM (default 16). */
  maxConsoleClients?: number;
  /** Join a fleet through etcd (docs/fleet.md); needs `listen`. An empty `advertise` means the TCP listener's address. */
  fleet?: FleetOptions;
}

export interface Daemon {
  host: Host;
  /** This daemon's membership of a fleet, with --fleet. */
  fleet?: FleetMember;
  socketPath: string;
  /** The TCP address actually bound (port 0 picks one). */
  tcp?: { host: string; port: number };
  close(): Promise<void>;
}

/** Is something already answering on this Unix socket? */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The socket path may hold only a socket a dead daemon left behind; anything
 * else (a file, a directory, a symlink) is someone's and is not removed.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it (remove it yourself if it is not needed)`);
  if (await socketInUse(path)) throw new Error(`another daemon is listening on ${path}`);
  rmSync(path, { force: true }); // left by a daemon that did not shut down
}

/** A client that went away mid-request: nothing to answer and nothing wrong with the daemon. */
function clientGone(req: IncomingMessage, res: ServerResponse, e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'EPIPE' || req.destroyed && !req.complete || res.destroyed;
}

/**
 * A request Node's HTTP parser refused (unknown method, malformed headers,
 * oversized headers): answered with a JSON error like every other refusal,
 * instead of Node's bare 400, and the connection closed.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A response under way on this connection cannot be followed by another: just close.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (!socket.writable || err.code === 'ECONNRESET' || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[status];
  const body = JSON.stringify({ error: `request: ${status === 431 ? 'headers too large' : status === 408 ? 'timed out' : `malformed HTTP (${err.code ?? 'parse error'})`}` });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message });
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests' }[status] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  if (opts.listen && !opts.token) throw new Error('--listen needs --token-file: the TCP API requires a bearer token');
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  if (!existsSync(opts.imagesDir) || !statSync(opts.imagesDir).isDirectory()) {
    throw new Error(`images directory not found: ${opts.imagesDir}`);
  }
  await clearStaleSocket(opts.socketPath);

  const host = new Host(opts);
  host.open();
  const metrics = createMetrics(host);
  const ctx: RouteContext = { host, metrics, version: opts.version, outgoing: new OutgoingMigrations(host), incoming: new IncomingMigrations(host, opts.log) };
  if (opts.fleet && !opts.listen) throw new Error('--fleet needs --listen: the other hosts reach this one through its TCP API');
  // A browser offers the token as a subprotocol (see auth.ts); answer with the console one.
  // maxPayload: a larger console message closes its socket with 1009 before it is buffered whole.
  const wss = new WebSocketServer({ noServer: true, maxPayload: CONSOLE_MAX_MESSAGE_BYTES, handleProtocols: (offered) => chooseProtocol(offered) });
  const gdbWss = new WebSocketServer({ noServer: true, maxPayload: GDB_MAX_MESSAGE_BYTES, handleProtocols: (offered) => chooseProtocol(offered) });
  const maxConsoleClients = opts.maxConsoleClients ?? DEFAULT_MAX_CONSOLE_CLIENTS;

  const onRequest = (auth: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    // The web console's static files hold no data: no token needed (the API calls they make need it).
    if (isUiPath(req.url)) {
      serveUi(req, res, opts.log, auth).catch(() => res.destroy());
      return;
    }
    if (auth && !checkBearer(req.headers.authorization, opts.token!)) {
      res.setHeader('www-authenticate', 'Bearer');
      sendError(res, 401, 'missing or wrong bearer token');
      return;
    }
    const t0 = process.hrtime.bigint();
    handle(ctx, req, res)
      .catch((e: unknown) => {
        if (e instanceof ApiError && !res.headersSent) {
          // The rest of an oversized body is not read: close the connection after the answer.
          if (e.status === 413) res.setHeader('connection', 'close');
          return sendError(res, e.status, e.message);
        }
        if (clientGone(req, res, e)) {
          res.destroy();
          return;
        }
        const msg = e instanceof Error ? e.message : String(e);
        opts.log(`internal error on ${req.method} ${req.url}: ${msg}`);
        if (!res.headersSent) sendError(res, 500, `internal error: ${msg}`);
        else res.destroy();
      })
      .finally(() => {
        if (process.env.TSVISOR_DEBUG === '1') {
          opts.log(`${req.method} ${req.url} ${res.statusCode} ${Number(process.hrtime.bigint() - t0) / 1e6} ms`);
        }
      });
  };

  const onUpgrade = (auth: boolean) => (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    if (auth) {
      // Both checks always run, so the time taken does not tell which one passed.
      const byHeader = checkBearer(req.headers.authorization, opts.token!);
      const byProtocol = checkBearerProtocol(req.headers['sec-websocket-protocol'], opts.token!);
      if (!byHeader && !byProtocol) return rejectUpgrade(socket, 401, 'missing or wrong bearer token');
    }
    if (/^\/v1\/migrations\/incoming\/?(?:\?.*)?$/.test(req.url ?? '')) {
      // A live migration stream (migration-in.ts): only with the bearer token in the header, only on TCP.
      if (!auth || !checkBearer(req.headers.authorization, opts.token!)) return rejectUpgrade(socket, 401, 'a migration needs the bearer token of the destination daemon');
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'tsvisor-migration') return rejectUpgrade(socket, 400, 'upgrade: must be tsvisor-migration');
      ctx.incoming.accept(socket, head);
      return;
    }
    const m = /^\/v1\/vms\/([^/?]+)\/(console|gdb)(?:\?.*)?$/.exec(req.url ?? '');
    if (!m) return rejectUpgrade(socket, 404, `no WebSocket route ${req.url}`);
    let name: string;
    try {
      name = decodeURIComponent(m[1]);
    } catch {
      return rejectUpgrade(socket, 400, 'name: invalid percent-encoding');
    }
    const vm = host.vms.get(name);
    if (!vm) {
      if (host.broken.has(name)) return rejectUpgrade(socket, 409, `VM '${name}' is broken`);
      return rejectUpgrade(socket, 404, `no VM named '${name}'`);
    }
    if (m[2] === 'gdb') {
      const why = gdbRefusal(vm);
      if (why) return rejectUpgrade(socket, 409, why);
      gdbWss.handleUpgrade(req, socket, head, (ws) => attachGdbSocket(ws, vm));
      return;
    }
    if (!vm.handle) return rejectUpgrade(socket, 409, `VM '${vm.name}' is ${vm.state}, not running`);
    if (vm.consoleClients >= maxConsoleClients) {
      return rejectUpgrade(socket, 429, `VM '${vm.name}' already has ${maxConsoleClients} console clients (the daemon's --max-console-clients)`);
    }
    wss.handleUpgrade(req, socket, head, (ws) => attachConsoleSocket(ws, vm));
  };

  const servers: Server[] = [];
  const unix = createServer(onRequest(false));
  unix.on('upgrade', onUpgrade(false));
  unix.on('clientError', onClientError);
  // The socket is created with mode 0600 from the start (umask), not chmod-ed afterwards.
  const oldUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      unix.once('error', reject);
      unix.listen(opts.socketPath, () => resolve());
    });
  } finally {
    process.umask(oldUmask);
  }
  chmodSync(opts.socketPath, 0o600);
  servers.push(unix);

  let tcp: Daemon['tcp'];
  if (opts.listen) {
    const t = createServer(onRequest(true));
    t.on('upgrade', onUpgrade(true));
    t.on('clientError', onClientError);
    await new Promise<void>((resolve, reject) => {
      t.once('error', reject);
      t.listen(opts.listen!.port, opts.listen!.host, () => resolve());
    });
    const addr = t.address();
    if (addr && typeof addr === 'object') {
      tcp = { host: addr.address, port: addr.port };
      host.protectApiPort(addr.port);
    }
    servers.push(t);
  }

  if (opts.fleet) {
    const advertise = opts.fleet.advertise || `http://${tcp!.host}:${tcp!.port}`;
    const member = new FleetMember({ ...opts.fleet, advertise }, host, ctx.outgoing);
    try {
      await member.start();
    } catch (e) {
      member.store.close();
      await host.close();
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      rmSync(opts.socketPath, { force: true });
      throw new Error(`cannot join the fleet at ${opts.fleet.endpoints.join(',')}: ${joinFailure(e, opts.fleet.caFile !== undefined || opts.fleet.endpoints.some((u) => /^https:/i.test(u)))}`);
    }
    ctx.fleet = member;
    addFleetMetrics(metrics, member);
  }

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      for (const c of [...wss.clients, ...gdbWss.clients]) c.terminate();
      ctx.fleet?.stopLoops();
      await host.close();
      // The VMs are stopped: only now may the others see this host gone (and restart its HA VMs).
      await ctx.fleet?.close();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      wss.close();
      gdbWss.close();
      rmSync(opts.socketPath, { force: true });
    })();
    return closing;
  };
  return { host, fleet: ctx.fleet, socketPath: opts.socketPath, tcp, close };
}

/** Why joining failed, on one line: gRPC's messages span lines and end in an empty "Resolution note". */
function joinFailure(e: unknown, tls: boolean): string {
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s*Resolution note:\s*$/, '').replace(/\s+/g, ' ').trim();
  return tls && /SSL|TLS|certificate/i.test(text) ? `${text} (check --etcd-ca, --etcd-cert and --etcd-key against etcd's certificates)` : text;
}

// The daemon: the HTTP API on a Unix socket (mode 0600) and optionally on TCP
// with a bearer token, the WebSocket console on the same servers, and a clean
// shutdown that stops every VM and removes the socket file.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { Host, type HostOptions } from './registry.js';
import { createMetrics } from './metrics.js';
import { handle, sendError } from './routes.js';
import { ApiError } from './validate.js';
import { checkBearer, checkBearerProtocol, chooseProtocol } from './auth.js';
import { attachConsoleSocket } from './console-ws.js';
import { isUiPath, serveUi } from './ui.js';

export interface DaemonOptions extends HostOptions {
  socketPath: string;
  /** TCP listener, "HOST:PORT"; needs `token`. */
  listen?: { host: string; port: number };
  token?: string;
  version: string;
}

export interface Daemon {
  host: Host;
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

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message });
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict' }[status] ?? 'Error';
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
  if (existsSync(opts.socketPath)) {
    if (await socketInUse(opts.socketPath)) throw new Error(`another daemon is listening on ${opts.socketPath}`);
    rmSync(opts.socketPath, { force: true }); // left by a daemon that did not shut down
  }

  const host = new Host(opts);
  host.open();
  const metrics = createMetrics(host);
  const ctx = { host, metrics, version: opts.version };
  // A browser offers the token as a subprotocol (see auth.ts); answer with the console one.
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => chooseProtocol(offered) });

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
        if (e instanceof ApiError) return sendError(res, e.status, e.message);
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
    const m = /^\/v1\/vms\/([^/?]+)\/console(?:\?.*)?$/.exec(req.url ?? '');
    if (!m) return rejectUpgrade(socket, 404, `no WebSocket route ${req.url}`);
    let name: string;
    try {
      name = decodeURIComponent(m[1]);
    } catch {
      return rejectUpgrade(socket, 400, 'name: invalid percent-encoding');
    }
    const vm = host.vms.get(name);
    if (!vm) return rejectUpgrade(socket, 404, `no VM named '${name}'`);
    if (!vm.handle) return rejectUpgrade(socket, 409, `VM '${vm.name}' is ${vm.state}, not running`);
    wss.handleUpgrade(req, socket, head, (ws) => attachConsoleSocket(ws, vm));
  };

  const servers: Server[] = [];
  const unix = createServer(onRequest(false));
  unix.on('upgrade', onUpgrade(false));
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

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      for (const c of wss.clients) c.terminate();
      await host.close();
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
      rmSync(opts.socketPath, { force: true });
    })();
    return closing;
  };
  return { host, socketPath: opts.socketPath, tcp, close };
}

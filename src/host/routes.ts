// HTTP routing of the daemon's API. Plain node:http plus ajv rather than a
// framework: the API is a dozen routes, the WebSocket console shares the
// server's upgrade path, and ajv on the shared schemas gives the exact errors
// (unknown fields rejected, no coercion) with no framework defaults to undo.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Host } from './registry.js';
import { ApiError, parseJsonBody } from './validate.js';
import { openApiDocument } from './openapi.js';
import { join } from 'node:path';
import { validateMigrate, type OutgoingMigrations } from './migration-out.js';
import type { IncomingMigrations } from './migration-in.js';
import type { FleetMember } from './fleet-member.js';
import { validateCreate } from './validate.js';

const MAX_BODY = 1024 * 1024;

export interface RouteContext {
  host: Host;
  /** Live migrations leaving and arriving (migration-out.ts, migration-in.ts). */
  outgoing: OutgoingMigrations;
  incoming: IncomingMigrations;
  metrics: Registry;
  version: string;
  /** Set when the daemon is a member of a fleet (serve --fleet). */
  fleet?: FleetMember;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, message: string): void {
  send(res, status, { error: message });
}

/** Only JSON is accepted, in UTF-8: anything else is refused before it is read. */
function checkContentType(req: IncomingMessage): void {
  const ct = req.headers['content-type'];
  if (ct === undefined) return; // checked once the body turns out not to be empty
  const [type, ...params] = ct.split(';').map((p) => p.trim().toLowerCase());
  if (type !== 'application/json') throw new ApiError(415, `content-type: must be application/json, not '${ct.slice(0, 100)}'`);
  for (const p of params) {
    const [k, v] = p.split('=').map((x) => x.trim().replace(/^"|"$/g, ''));
    if (k === 'charset' && v !== 'utf-8' && v !== 'utf8') throw new ApiError(415, `content-type: the charset must be utf-8, not '${v}'`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readBody(req: IncomingMessage): Promise<string> {
  checkContentType(req);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY) throw new ApiError(413, `body: larger than ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, `body: larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  if (size > 0 && req.headers['content-type'] === undefined) throw new ApiError(415, 'content-type: a body needs Content-Type: application/json');
  try {
    return utf8.decode(Buffer.concat(chunks));
  } catch {
    throw new ApiError(400, 'body: invalid UTF-8');
  }
}

/** Lifecycle actions take no body; an empty object is accepted too. */
async function noBody(req: IncomingMessage): Promise<void> {
  const text = await readBody(req);
  if (text.trim() === '') return;
  const body = parseJsonBody(text);
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length > 0) {
    throw new ApiError(400, `body: this action takes no fields`);
  }
}

/**
 * The snapshot directory a request names: {"dir": NAME}, a plain name that
 * becomes STATE_DIR/snapshots/NAME (nothing outside the daemon's state directory).
 */
export function snapshotDirOf(stateDir: string, body: unknown): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'body: expected an object {"dir": NAME}');
  const keys = Object.keys(body);
  const unknown = keys.find((k) => k !== 'dir' && k !== 'diskOverlay');
  if (unknown !== undefined) throw new ApiError(400, `body: unknown field ${unknown}`);
  const overlay = (body as { diskOverlay?: unknown }).diskOverlay;
  if (overlay !== undefined && typeof overlay !== 'boolean') throw new ApiError(400, 'diskOverlay: must be a boolean');
  const dir = (body as { dir?: unknown }).dir;
  if (typeof dir !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(dir)) {
    throw new ApiError(400, 'dir: a snapshot name (letters, digits, _ . -, at most 63), kept in the daemon\'s state directory');
  }
  return join(stateDir, 'snapshots', dir);
}

/** Longest a graceful stop or reboot may wait for its guest (seconds). */
export const MAX_SHUTDOWN_TIMEOUT_S = 3600;

/** The body of stop and reboot: nothing, {}, or {"timeout": seconds} for the guest (0 = at once). */
async function timeoutBody(req: IncomingMessage): Promise<number | undefined> {
  const text = await readBody(req);
  if (text.trim() === '') return undefined;
  const body = parseJsonBody(text);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'body: expected an object {"timeout": SECONDS}');
  const extra = Object.keys(body).find((k) => k !== 'timeout');
  if (extra !== undefined) throw new ApiError(400, `body: unknown field ${extra}`);
  const t = (body as { timeout?: unknown }).timeout;
  if (t === undefined) return undefined;
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > MAX_SHUTDOWN_TIMEOUT_S) {
    throw new ApiError(400, `timeout: whole seconds from 0 to ${MAX_SHUTDOWN_TIMEOUT_S} the guest has to shut down (0 = at once)`);
  }
  return t;
}

const ACTIONS = new Set(['start', 'pause', 'resume', 'stop', 'kill', 'restart', 'reboot']);

export async function handle(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { host } = ctx;
  const url = new URL(req.url ?? '/', 'http://daemon');
  let parts: string[];
  try {
    parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new ApiError(400, 'path: invalid percent-encoding');
  }
  const method = req.method ?? 'GET';
  const allow = (methods: string[]) => {
    if (!methods.includes(method)) throw new ApiError(405, `${method} is not allowed on ${url.pathname} (allowed: ${methods.join(', ')})`);
  };

  if (url.pathname === '/metrics') {
    allow(['GET']);
    const text = await ctx.metrics.metrics();
    res.writeHead(200, { 'content-type': ctx.metrics.contentType });
    res.end(text);
    return;
  }
  if (parts[0] !== 'v1') throw new ApiError(404, `no route ${url.pathname} (the API is under /v1)`);
  if (parts[1] === 'fleet') {
    try {
      return await fleetRoute(ctx, req, res, parts.slice(2), method, allow);
    } catch (e) {
      // etcd unreachable, a deadline passed: the fleet is unavailable, the daemon is fine.
      if (e instanceof ApiError) throw e;
      throw new ApiError(503, `fleet: etcd: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const [, a, b, c, ...extra] = parts;
  if (extra.length > 0) throw new ApiError(404, `no route ${url.pathname}`);

  if (a === 'openapi.json' && b === undefined) {
    allow(['GET']);
    return send(res, 200, openApiDocument(ctx.version));
  }
  if (a === 'host' && b === 'stats' && c === undefined) {
    allow(['GET']);
    return send(res, 200, host.hostStats());
  }
  if (a === 'snapshots') {
    if (b === undefined) {
      allow(['GET']);
      return send(res, 200, host.snapshots.list());
    }
    if (c === undefined) {
      allow(['GET', 'DELETE']);
      if (method === 'GET') return send(res, 200, host.snapshots.describe(b));
      await noBody(req);
      await host.serialized(`snapshot:${b}`, () => host.snapshots.remove(b));
      res.writeHead(204);
      res.end();
      return;
    }
    if (c === 'clones') {
      allow(['POST']);
      const body = parseJsonBody(await readBody(req));
      const vms = await host.serialized(`snapshot:${b}`, () => host.createClones(b, body));
      return send(res, 201, { snapshot: b, vms: vms.map((vm) => host.describe(vm)) });
    }
    throw new ApiError(404, `no route ${url.pathname}`);
  }
  if (a === 'host' && b === 'history' && c === undefined) {
    allow(['GET']);
    return send(res, 200, host.history.hostJSON());
  }
  if (a === 'host' && b === 'events' && c === undefined) {
    allow(['GET']);
    return send(res, 200, host.events.host());
  }
  if (a === 'images' && b === undefined) {
    allow(['GET']);
    return send(res, 200, host.images());
  }
  if (a === 'migrations' && b === 'incoming') {
    if (c === undefined) throw new ApiError(400, 'migrations/incoming: needs an upgrade to a migration stream (tsvisor migrate)');
    allow(['GET']);
    const st = await ctx.incoming.status(c);
    if (!st) throw new ApiError(404, `no incoming migration ${c}`);
    return send(res, 200, st);
  }
  if (a !== 'vms') throw new ApiError(404, `no route ${url.pathname}`);

  if (b === undefined) {
    allow(['GET', 'POST']);
    if (method === 'GET') return send(res, 200, host.list());
    const body = parseJsonBody(await readBody(req));
    if (!ctx.fleet) return send(res, 201, host.describe(await host.create(body)));
    // In a fleet the name and the memory are taken in etcd first: no other host can have the name.
    const config = validateCreate(body, host.limits);
    if (host.has(config.name)) throw new ApiError(409, `name: a VM named '${config.name}' already exists`);
    await ctx.fleet.claimLocal(config);
    try {
      return send(res, 201, host.describe(await host.create(body)));
    } catch (e) {
      if (!host.has(config.name)) await ctx.fleet.releaseLocal(config.name);
      throw e;
    }
  }
  const name = b;
  if (c === undefined) {
    allow(['GET', 'PATCH', 'DELETE']);
    if (!host.has(name)) throw new ApiError(404, `no VM named '${name}'`);
    if (method === 'GET') return send(res, 200, host.describeByName(name));
    if (method === 'PATCH') {
      host.get(name);
      const body = parseJsonBody(await readBody(req));
      return send(res, 200, host.describe(await host.patch(name, body)));
    }
    const force = url.searchParams.get('force');
    if (force !== null && force !== 'true' && force !== 'false') throw new ApiError(400, 'force: must be true or false');
    await host.remove(name, force === 'true');
    await ctx.fleet?.releaseLocal(name);
    res.writeHead(204);
    res.end();
    return;
  }
  if (ACTIONS.has(c)) {
    allow(['POST']);
    host.get(name);
    const timeout = c === 'stop' || c === 'reboot' ? await timeoutBody(req) : (await noBody(req), undefined);
    let vm;
    switch (c) {
      case 'start': vm = await host.start(name); break;
      case 'pause': vm = await host.pause(name); break;
      case 'resume': vm = await host.resume(name); break;
      case 'restart': vm = await host.restart(name); break;
      case 'stop': vm = await host.stop(name, false, timeout); break;
      case 'reboot': vm = await host.reboot(name, timeout); break;
      default: vm = await host.stop(name, true);
    }
    return send(res, 200, host.describe(vm));
  }
  if (c === 'stats') {
    allow(['GET']);
    const vm = host.get(name);
    // Every counter comes from shared memory (or a process VM's last report): no wait on the worker.
    return send(res, 200, host.vmStats(vm));
  }
  if (c === 'history') {
    allow(['GET']);
    host.get(name);
    return send(res, 200, host.history.vm(name));
  }
  if (c === 'events') {
    allow(['GET']);
    if (!host.has(name)) throw new ApiError(404, `no VM named '${name}'`);
    return send(res, 200, host.events.vm(name));
  }
  if (c === 'snapshot') {
    allow(['PUT']);
    const vm = host.get(name);
    const body = parseJsonBody(await readBody(req));
    const dir = snapshotDirOf(host.opts.stateDir, body);
    const { dir: snapName, diskOverlay } = body as { dir: string; diskOverlay?: boolean };
    return send(res, 200, { ...(await host.snapshotVm(vm.name, dir, snapName, diskOverlay === true)), name: snapName });
  }
  if (c === 'migrate') {
    allow(['POST', 'GET', 'DELETE']);
    // The result stays readable after a migration that took the VM away.
    if (method === 'GET') return send(res, 200, ctx.outgoing.status(name));
    host.get(name);
    if (method === 'DELETE') return send(res, 200, await ctx.outgoing.cancel(name));
    const req2 = validateMigrate(parseJsonBody(await readBody(req)));
    return send(res, 202, await ctx.outgoing.start(name, req2));
  }
  if (c === 'log') {
    allow(['GET']);
    const log = host.get(name).readLog();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': log.length });
    res.end(log);
    return;
  }
  if (c === 'console') {
    host.get(name);
    throw new ApiError(400, 'console: needs a WebSocket upgrade');
  }
  throw new ApiError(404, `no route ${url.pathname}`);
}

/** /v1/fleet/...: the fleet's hosts, VMs, placement, drain and events (docs/fleet.md). */
async function fleetRoute(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, p: string[], method: string, allow: (m: string[]) => void): Promise<void> {
  const fleet = ctx.fleet;
  if (!fleet) throw new ApiError(404, 'this daemon is not a member of a fleet (start it with serve --fleet)');
  const [a, b, c, ...extra] = p;
  if (extra.length > 0) throw new ApiError(404, `no route /v1/fleet/${p.join('/')}`);
  if (a === 'hosts' && b === undefined) {
    allow(['GET']);
    return send(res, 200, await fleet.hostsView());
  }
  if (a === 'hosts' && b !== undefined && c === 'drain') {
    allow(['POST', 'GET']);
    if (method === 'GET') {
      const d = await fleet.store.drain(b);
      if (!d) throw new ApiError(404, `host '${b}' has not been drained`);
      return send(res, 200, d);
    }
    const body = parseJsonBody((await readBody(req)) || '{}');
    const policy = (body as { policy?: unknown })?.policy ?? 'spread';
    if (typeof body !== 'object' || body === null || Object.keys(body).some((k) => k !== 'policy') || (policy !== 'spread' && policy !== 'pack')) {
      throw new ApiError(400, 'body: {"policy": "spread" | "pack"} or nothing');
    }
    return send(res, 202, await fleet.drain(b, policy));
  }
  if (a === 'hosts' && b !== undefined && c === 'undrain') {
    allow(['POST']);
    await noBody(req);
    await fleet.undrain(b);
    return send(res, 200, { host: b, unschedulable: false });
  }
  if (a === 'vms' && b === undefined) {
    allow(['GET', 'POST']);
    if (method === 'GET') return send(res, 200, await fleet.store.vms());
    const body = parseJsonBody(await readBody(req));
    return send(res, 201, await fleet.createPlaced(body));
  }
  if (a === 'vms' && b !== undefined && c === 'migrate') {
    allow(['POST']);
    const text = await readBody(req);
    const body = parseJsonBody(text.trim() === '' ? '{}' : text) as { to?: unknown; policy?: unknown };
    if (typeof body !== 'object' || body === null || Object.keys(body).some((k) => k !== 'to' && k !== 'policy')) throw new ApiError(400, 'body: {"to": HOST, "policy": "spread" | "pack"} (both optional)');
    if (body.to !== undefined && typeof body.to !== 'string') throw new ApiError(400, 'to: a host name');
    const policy = body.policy ?? 'spread';
    if (policy !== 'spread' && policy !== 'pack') throw new ApiError(400, 'policy: spread or pack');
    return send(res, 202, await fleet.migrateVm(b, body.to, policy));
  }
  if (a === 'events' && b === undefined) {
    allow(['GET']);
    return send(res, 200, await fleet.store.events());
  }
  throw new ApiError(404, `no route /v1/fleet/${p.join('/')}`);
}

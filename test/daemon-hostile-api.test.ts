// A hostile-input harness driven by the daemon's own OpenAPI document: for
// every path and method it describes (and the methods it does not), a few
// thousand malformed requests go to a real `tsvisor serve` process: wrong
// types and out-of-range values for every schema field, unknown and missing
// fields, random JSON, deep nesting, huge bodies, invalid UTF-8, wrong
// content types, hostile names and percent-encodings, unknown methods.
// Checked: never a 5xx, the daemon never crashes nor logs an internal error,
// and afterwards the API's list, the state directory and the memory budget
// agree (nothing half-created).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { api, makeImages, until } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const SEED = 20261205;

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}
type Schema = { type?: string | string[]; properties?: Record<string, Schema>; required?: string[]; items?: Schema; $ref?: string; anyOf?: Schema[] };

let dir: string;
let sock: string;
let daemon: ChildProcess;
let stderr = '';

before(async () => {
  const m = await makeImages(false);
  dir = m.dir;
  sock = join(dir, 'd.sock');
  daemon = spawn(process.execPath, [CLI, 'serve', '--socket', sock, '--state-dir', join(dir, 'state'), '--images-dir', m.images, '--memory-budget', '1G', '--cpus', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  daemon.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  await until('the daemon to listen', () => /listening on/.test(stderr) || daemon.exitCode !== null, 30_000);
  assert.match(stderr, /listening on/);
});
after(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  rmSync(dir, { recursive: true, force: true });
});

const HOSTILE_NAMES = [
  '', '..', '%2e%2e', '.', 'a%2Fb', '%2F', '%00', 'a%00b', '%ff', '%', '%zz', '%C0%AF', 'x'.repeat(5000), '-x', '.hidden', 'a+b', '%20',
  encodeURIComponent('名前'), encodeURIComponent('<script>'), 'target', 'target.json', 'nope', '__proto__', 'constructor', 'a'.repeat(64),
];

/** Values of the wrong type or out of range, for any field. */
const BAD_VALUES: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, '', 'x', '16', 'NaN', '\u0000', 'a'.repeat(10_000), '../../etc/passwd', '/etc/passwd',
  [], [1, 2], {}, { a: 1 }, { __proto__: { polluted: true } }, [[[]]],
];

function resolveRef(doc: Record<string, any>, s: Schema): Schema {
  if (!s.$ref) return s;
  const parts = s.$ref.replace(/^#\//, '').split('/');
  return parts.reduce((o: any, p) => o[p], doc) as Schema;
}

/** Bodies that break `schema` one field at a time (recursing into objects, and arrays of objects), starting from `valid`. */
function mutations(doc: Record<string, any>, schema: Schema, valid: Record<string, unknown>, depth = 0): unknown[] {
  const s = resolveRef(doc, schema);
  const out: unknown[] = [];
  const props = s.properties ?? {};
  for (const [k, sub0] of Object.entries(props)) {
    const sub = resolveRef(doc, sub0.anyOf ? sub0.anyOf[0] : sub0);
    for (const v of BAD_VALUES) out.push({ ...valid, [k]: v });
    if (depth < 2 && sub.type === 'object' && sub.properties) {
      for (const inner of mutations(doc, sub, {}, depth + 1)) out.push({ ...valid, [k]: inner });
    }
    if (depth < 2 && sub.type === 'array' && sub.items) {
      const item = resolveRef(doc, sub.items);
      if (item.type === 'object') for (const inner of mutations(doc, item, {}, depth + 1)) out.push({ ...valid, [k]: [inner] });
      out.push({ ...valid, [k]: Array.from({ length: 1000 }, () => ({})) });
    }
  }
  for (const r of s.required ?? []) {
    const copy = { ...valid };
    delete copy[r];
    out.push(copy);
  }
  out.push({ ...valid, unknownField: 1 }, JSON.parse('{"__proto__": {"isAdmin": true}}'), { ...valid, constructor: { prototype: {} } });
  return out;
}

function deep(n: number): string {
  return '['.repeat(n) + ']'.repeat(n);
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const JSON_CT = { 'content-type': 'application/json' };

/** Raw bodies that are not what any route wants. */
const RAW_BODIES: [Record<string, string>, Buffer][] = [
  [JSON_CT, Buffer.from(deep(100_000))],
  [JSON_CT, Buffer.from('{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000))],
  [JSON_CT, Buffer.alloc(2 * 1024 * 1024, 0x20)],
  [JSON_CT, Buffer.from('{"name": "x", "memory": 16, "kernel": "idle", "pad": "' + 'a'.repeat(1_100_000) + '"}')],
  [JSON_CT, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
  [JSON_CT, Buffer.from('\ufeff{"name":"bom","memory":16,"kernel":"idle"}')],
  [JSON_CT, Buffer.from('{"name":"dup","name":"dup2","memory":16,"kernel":"idle"}')],
  [JSON_CT, Buffer.from('')],
  [JSON_CT, Buffer.from('null')],
  [JSON_CT, Buffer.from('1e999999')],
  [JSON_CT, Buffer.from('"\\ud800"')],
  [JSON_CT, Buffer.from('{')],
  [{ 'content-type': 'text/plain' }, json({ name: 'ct', memory: 16, kernel: 'idle' })],
  [{ 'content-type': 'application/json; charset=utf-16' }, json({})],
  [{ 'content-type': 'application/x-www-form-urlencoded' }, Buffer.from('name=x&memory=16')],
  [{}, json({ name: 'noct', memory: 16, kernel: 'idle' })],
  [{ 'content-type': '' }, json({})],
  [{ 'content-type': 'application/json', 'content-encoding': 'gzip' }, Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0])],
];

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'BREW'];

function buildRequests(doc: Record<string, any>): Req[] {
  const reqs: Req[] = [];
  const paths = Object.keys(doc.paths as object);
  const validCreate = { name: 'fz', memory: 16, kernel: 'idle' };
  const validPatch = { cpu: { weight: 100 } };
  const createMut = mutations(doc, { $ref: '#/components/schemas/CreateVm' }, validCreate);
  const patchMut = mutations(doc, { $ref: '#/components/schemas/PatchVm' }, validPatch);
  let n = 0;
  // A distinct name per create, so valid-looking ones that slip through do not just collide.
  const named = (b: unknown) => (b && typeof b === 'object' && !Array.isArray(b) && (b as any).name === 'fz' ? { ...(b as object), name: `fz${n++}` } : b);

  for (const b of createMut) reqs.push({ method: 'POST', path: '/v1/vms', headers: JSON_CT, body: json(named(b)) });
  for (const b of patchMut) reqs.push({ method: 'PATCH', path: '/v1/vms/target', headers: JSON_CT, body: json(b) });
  for (const [h, b] of RAW_BODIES) {
    reqs.push({ method: 'POST', path: '/v1/vms', headers: h, body: b });
    reqs.push({ method: 'PATCH', path: '/v1/vms/target', headers: h, body: b });
    reqs.push({ method: 'POST', path: '/v1/vms/target/start', headers: h, body: b });
  }
  // Every path of the document with hostile names, every method, with and without a body.
  for (const p of paths) {
    for (const name of p.includes('{name}') ? HOSTILE_NAMES : ['']) {
      const path = p.replace('{name}', name);
      for (const method of METHODS) {
        reqs.push({ method, path, headers: {} });
        // (Node's client cannot send a HEAD request with a body and read the answer.)
        if (method !== 'HEAD') reqs.push({ method, path, headers: JSON_CT, body: json(BAD_VALUES[(n++ * 7) % BAD_VALUES.length]) });
      }
      for (const q of ['?force=maybe', '?force=true&force=false', '?%ff=1', '?force', '?' + 'a=1&'.repeat(2000)]) reqs.push({ method: 'DELETE', path: path + q, headers: {} });
    }
  }
  // Paths the document does not have.
  for (const path of ['/', '/v1', '/v2/vms', '/v1/vms/target/console/extra', '/v1//vms', '/v1/vms/', '/%', '/v1/vms/%E0%A4%A', '//etc/passwd', '/v1/../etc', '/metrics/x', '/ui/../../etc/passwd', '/ui/%2e%2e/%2e%2e/etc/passwd', '/' + 'a/'.repeat(3000)]) {
    for (const method of METHODS) reqs.push({ method, path, headers: {} });
  }
  // Random JSON (fast-check, fixed seed) to the body-taking routes.
  const randomBodies = fc.sample(fc.jsonValue({ maxDepth: 6 }), { numRuns: 600, seed: SEED });
  for (const [i, b] of randomBodies.entries()) {
    const target = ['/v1/vms', '/v1/vms/target', '/v1/vms/target/stop', '/v1/vms/target/restart'][i % 4];
    reqs.push({ method: target === '/v1/vms/target' ? 'PATCH' : 'POST', path: target, headers: JSON_CT, body: json(named(b)) });
  }
  // Valid bodies with random field values of the right shape.
  const creates = fc.sample(
    fc.record({
      name: fc.oneof(fc.string({ maxLength: 70 }), fc.constantFrom('target', 'fz-a', '..', 'a/b')),
      memory: fc.oneof(fc.integer({ min: -10, max: 5000 }), fc.double()),
      kernel: fc.constantFrom('idle', 'spin', '/etc/passwd', '../idle', 'idle\u0000', 'missing', ''),
      cpu: fc.record({ weight: fc.integer({ min: -5, max: 300_000 }), cap: fc.double({ min: -1, max: 2000 }) }, { requiredKeys: [] }),
      restart: fc.record({ policy: fc.string({ maxLength: 12 }), maxRetries: fc.integer({ min: -1, max: 2000 }) }, { requiredKeys: [] }),
    }, { requiredKeys: ['name'] }),
    { numRuns: 600, seed: SEED + 1 },
  );
  for (const b of creates) reqs.push({ method: 'POST', path: '/v1/vms', headers: JSON_CT, body: json(b) });
  return reqs;
}

function send(agent: Agent, r: Req): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { ...r.headers };
    const q = request({ socketPath: sock, agent, method: r.method, path: r.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    q.on('error', (e: NodeJS.ErrnoException) => {
      // The daemon may answer (413, 415) and close before a huge body is sent: that is a refusal, not a failure.
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') resolve({ status: 0, body: '' });
      else reject(new Error(`${r.method} ${r.path.slice(0, 80)} ${r.body?.subarray(0, 60).toString('latin1') ?? ''}: ${e.message}`));
    });
    q.end(r.body);
  });
}

test('thousands of malformed requests: no 5xx, no crash, nothing half-created', { timeout: budget(120_000) }, async () => {
  const where = { socketPath: sock };
  const docReply = await api(where, 'GET', '/v1/openapi.json');
  assert.equal(docReply.status, 200);
  const doc = docReply.json as Record<string, any>;
  assert.equal((await api(where, 'POST', '/v1/vms', { name: 'target', memory: 16, kernel: 'idle' })).status, 201);
  assert.equal((await api(where, 'POST', '/v1/vms/target/start')).status, 200);

  const reqs = buildRequests(doc);
  assert.ok(reqs.length >= 2000, `only ${reqs.length} requests`);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const failures: string[] = [];
  const counts = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < reqs.length) {
      const r = reqs[next++];
      const { status, body } = await send(agent, r);
      counts.set(status, (counts.get(status) ?? 0) + 1);
      const what = `${r.method} ${r.path.slice(0, 80)} ${r.body?.subarray(0, 80).toString('latin1') ?? ''}`;
      if (status >= 500) failures.push(`${status} for ${what}: ${body.slice(0, 200)}`);
      // The web console's static files (/ui/) answer in plain text; the API always in JSON.
      if (status >= 400 && r.method !== 'HEAD' && !r.path.startsWith('/ui/') && !/^\{"error":"/.test(body)) failures.push(`${status} without a JSON error for ${what}: ${body.slice(0, 100)}`);
      if (daemon.exitCode !== null) throw new Error(`the daemon exited (${daemon.exitCode}) after ${what}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  agent.destroy();
  console.log(`hostile harness: ${reqs.length} requests; statuses ${[...counts.entries()].sort().map(([s, n]) => `${s}:${n}`).join(' ')}`);
  assert.deepEqual(failures.slice(0, 20), []);

  // Still alive and consistent.
  assert.equal(daemon.exitCode, null, 'the daemon is running');
  assert.doesNotMatch(stderr, /internal error|TypeError|RangeError|\n\s+at /, 'no internal error in the daemon log');
  const list = (await api(where, 'GET', '/v1/vms')).json as { name: string; state: string; config: { memory: number } }[];
  // ('target' itself may be gone: DELETE ...?force=true&force=false is a valid forced delete.)
  for (const v of list) assert.ok(['running', 'stopped', 'created'].includes(v.state), `${v.name} is ${v.state}`);
  const files = readdirSync(join(dir, 'state', 'vms'));
  assert.deepEqual(files.filter((f) => !f.endsWith('.json')), [], 'no temporary or stray files');
  assert.deepEqual(files.map((f) => f.slice(0, -5)).sort(), list.map((v) => v.name).sort(), 'the state directory matches the list');
  const stats = (await api(where, 'GET', '/v1/host/stats')).json;
  assert.equal(stats.memoryReservedMiB, list.reduce((a, v) => a + v.config.memory, 0), 'the budget matches the listed VMs');
});

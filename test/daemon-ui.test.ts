// The daemon's web console at /ui/: a real daemon on a temporary socket and a
// TCP port with a token read from a token file. The page and xterm.js are
// served without the token (with the right types, a CSP on the page), the API
// still needs it, and the console WebSocket takes the token as the subprotocol
// tsvisor.bearer.<base64url>: with it a booted default guest's console
// answers; a wrong one is refused with 401. There is no browser here, so the
// page's script is checked at the HTTP level only. Also `tsvisor serve
// --listen --token-file` serving the page.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { api, makeImages, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { bearerProtocol, checkBearerProtocol, chooseProtocol, readToken } from '../src/host/auth.js';
import { budget } from './lib/budget.js';

/** The migrate form names the address it wants as http://HOST:PORT: a placeholder, not a host the page loads from. */
const noPlaceholder = (text: string) => text.replaceAll('http://HOST:PORT', '');

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const require = createRequire(import.meta.url);
// Characters that a raw subprotocol could not carry (HTTP headers take a non-ASCII token badly, see below).
const TOKEN = 'ui-test/token=0123456789,@;';

let d: TestDaemon;
let port: number;
let tokenDir: string;
before(async () => {
  // The token goes through a token file, as `tsvisor serve --token-file` reads it.
  tokenDir = (await makeImages(false)).dir;
  const file = join(tokenDir, 'token');
  writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
  const token = readToken(file);
  d = await startTestDaemon({ withGuest: true, cpus: 1, memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token });
  port = d.tcp!.port;
});
after(async () => {
  await d?.cleanup();
  if (tokenDir) rmSync(tokenDir, { recursive: true, force: true });
});

/** A plain GET (or other method) over TCP with no token. */
async function get(path: string, method = 'GET') {
  return api({ port }, method, path);
}

interface WsResult {
  status: number;
  protocol?: string;
  ws?: WebSocket;
}

/** Open a console WebSocket over TCP offering these subprotocols; 101 leaves it open. */
function openWs(path: string, protocols: string[], headers: Record<string, string> = {}): Promise<WsResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { headers });
    ws.once('open', () => resolve({ status: 101, protocol: ws.protocol, ws }));
    ws.once('unexpected-response', (_q, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    ws.once('error', reject);
  });
}

describe('auth helpers', () => {
  test('bearer subprotocol: base64url of the token, compared exactly', () => {
    const p = bearerProtocol(TOKEN);
    assert.match(p, /^tsvisor\.bearer\.[A-Za-z0-9_-]+$/);
    assert.equal(checkBearerProtocol(`tsvisor.console, ${p}`, TOKEN), true);
    assert.equal(checkBearerProtocol(p, TOKEN), true);
    assert.equal(checkBearerProtocol(undefined, TOKEN), false);
    assert.equal(checkBearerProtocol('tsvisor.console', TOKEN), false);
    assert.equal(checkBearerProtocol('tsvisor.bearer.', TOKEN), false);
    assert.equal(checkBearerProtocol(bearerProtocol(`${TOKEN}x`), TOKEN), false);
    assert.equal(checkBearerProtocol(bearerProtocol(TOKEN.slice(1)), TOKEN), false);
    // Characters outside base64url are not skipped over.
    assert.equal(checkBearerProtocol(`${p.slice(0, 20)}.${p.slice(20)}`, TOKEN), false);
    // Two bearer entries: refused, whichever is right.
    assert.equal(checkBearerProtocol(`${p}, ${bearerProtocol('other-token-000000000')}`, TOKEN), false);
    // A non-ASCII token round-trips as UTF-8.
    assert.equal(checkBearerProtocol(bearerProtocol('jeton-secret-été-0123'), 'jeton-secret-été-0123'), true);
    assert.equal(chooseProtocol(['tsvisor.bearer.x', 'tsvisor.console']), 'tsvisor.console');
    assert.equal(chooseProtocol(['tsvisor.bearer.x']), 'tsvisor.bearer.x');
    assert.equal(chooseProtocol(['chat']), false);
  });
});

describe('static files without a token', () => {
  test('/ui/ is the page, with a CSP; /ui redirects to it', async () => {
    const r = await get('/ui/');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
    const csp = String(r.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.match(r.text, /<script type="module" src="app.js"><\/script>/);
    assert.match(r.text, /href="vendor\/xterm.css"/);
    assert.doesNotMatch(noPlaceholder(r.text), /https?:\/\//, 'no external hosts');
    // Served over TCP, the page knows it needs the token (and asks before calling the API).
    assert.match(r.text, /<html lang="en" data-auth="token">/);
    const redirect = await get('/ui');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/ui/');
    assert.equal((await get('/ui/index.html?x=1')).status, 200);
  });

  test('script, style and xterm.js from node_modules, with their types', async () => {
    const files: [string, RegExp, string?][] = [
      ['/ui/app.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/style.css', /^text\/css; charset=utf-8$/],
      ['/ui/vendor/xterm.mjs', /^text\/javascript; charset=utf-8$/, '@xterm/xterm/lib/xterm.mjs'],
      ['/ui/vendor/xterm.css', /^text\/css; charset=utf-8$/, '@xterm/xterm/css/xterm.css'],
      ['/ui/vendor/addon-fit.mjs', /^text\/javascript; charset=utf-8$/, '@xterm/addon-fit/lib/addon-fit.mjs'],
      ['/ui/vendor/xterm.mjs.map', /^application\/json/, '@xterm/xterm/lib/xterm.mjs.map'],
      ['/ui/views.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/form.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/charts.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/format.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/fleet.js', /^text\/javascript; charset=utf-8$/],
      ['/ui/vendor/uPlot.esm.js', /^text\/javascript; charset=utf-8$/, 'uplot/dist/uPlot.esm.js'],
      ['/ui/vendor/uPlot.min.css', /^text\/css; charset=utf-8$/, 'uplot/dist/uPlot.min.css'],
    ];
    for (const [path, type, pkgFile] of files) {
      const r = await get(path);
      assert.equal(r.status, 200, `${path}: ${r.text.slice(0, 200)}`);
      assert.match(String(r.headers['content-type']), type, path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
      if (pkgFile) assert.equal(r.text, readFileSync(require.resolve(pkgFile), 'utf8'), `${path} is the package's file`);
    }
    assert.match((await get('/ui/vendor/xterm.mjs')).text, /export\s*\{[^}]*\bas Terminal\b/);
    assert.match((await get('/ui/vendor/addon-fit.mjs')).text, /export\s*\{[^}]*\bas FitAddon\b/);
    const app = (await get('/ui/app.js')).text;
    assert.match(app, /from '\.\/vendor\/xterm\.mjs'/);
    assert.match(app, /tsvisor\.bearer\./);
    assert.doesNotMatch(app, /https?:\/\//, 'no external hosts');
    assert.match((await get('/ui/vendor/uPlot.esm.js')).text, /export\s*\{\s*uPlot as default\s*\}/);
    for (const m of ['views.js', 'form.js', 'charts.js', 'format.js', 'fleet.js']) {
      assert.doesNotMatch(noPlaceholder((await get(`/ui/${m}`)).text), /https?:\/\//, `${m}: no external hosts`);
    }
  });

  test('compressed when the browser takes gzip, and an unchanged file is a 304 without a body', async () => {
    const raw = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
        const q = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        });
        q.on('error', reject);
        q.end();
      });
    const original = readFileSync(require.resolve('@xterm/xterm/lib/xterm.mjs'));
    const gz = await raw('/ui/vendor/xterm.mjs', { 'accept-encoding': 'gzip, deflate, br' });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers.vary, 'Accept-Encoding');
    assert.ok(gz.body.length < original.length / 2, `${gz.body.length} bytes for ${original.length}`);
    assert.deepEqual(gunzipSync(gz.body), original);
    // Refused with q=0, or not offered: the plain bytes.
    for (const ae of ['gzip;q=0', 'br', undefined]) {
      const plain = await raw('/ui/vendor/xterm.mjs', ae ? { 'accept-encoding': ae } : {});
      assert.equal(plain.headers['content-encoding'], undefined, String(ae));
      assert.deepEqual(plain.body, original);
    }
    const etag = String(gz.headers.etag);
    assert.match(etag, /^"[\w-]{22}"$/);
    const again = await raw('/ui/vendor/xterm.mjs', { 'if-none-match': etag, 'accept-encoding': 'gzip' });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal((await raw('/ui/vendor/xterm.mjs', { 'if-none-match': '"other"' })).status, 200);
    // The page's tag differs by listener: the TCP page carries data-auth, the socket's does not.
    const page = await raw('/ui/', {});
    assert.equal(page.headers['content-security-policy'] !== undefined, true);
    assert.match(page.body.toString('utf8'), /data-auth="token"/);
    const pageAgain = await raw('/ui/', { 'if-none-match': String(page.headers.etag) });
    assert.equal(pageAgain.status, 304);
    assert.ok(pageAgain.headers['content-security-policy'], 'a 304 keeps the page\'s headers');
  });

  test('unknown files, other methods, paths that try to leave /ui/', async () => {
    for (const p of ['/ui/nope.js', '/ui/vendor/', '/ui/../v1/vms', '/ui/%2e%2e/v1/vms', '/ui/vendor/../../package.json', '/ui//app.js']) {
      const r = await get(p);
      assert.equal(r.status, 404, `${p} -> ${r.status}`);
      assert.doesNotMatch(r.text, /"name"|\[/, `${p} gives no data`);
    }
    const post = await get('/ui/', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await get('/ui/app.js', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    assert.ok(Number(head.headers['content-length']) > 0);
  });

  test('the Unix socket serves the page too, and its console needs no token', async () => {
    const r = await api(d, 'GET', '/ui/');
    assert.equal(r.status, 200);
    assert.match(r.text, /app\.js/);
    assert.doesNotMatch(r.text, /data-auth/, 'the Unix socket needs no token');
    assert.equal((await api(d, 'POST', '/v1/vms', { name: 'local', memory: 16, kernel: 'idle' })).status, 201);
    assert.equal((await api(d, 'POST', '/v1/vms/local/start')).status, 200);
    for (const protocols of [['tsvisor.console'], ['tsvisor.console', bearerProtocol('any-token-at-all-000')]]) {
      const ws = new WebSocket(`ws+unix://${d.socketPath}:/v1/vms/local/console`, protocols);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      assert.equal(ws.protocol, 'tsvisor.console');
      ws.terminate();
    }
    assert.equal((await api(d, 'DELETE', '/v1/vms/local?force=true')).status, 204);
  });
});

describe('the API still needs the token', () => {
  test('/v1 and /metrics: 401 without it, 200 with it', async () => {
    for (const p of ['/v1/vms', '/v1/host/stats', '/v1/openapi.json', '/metrics', '/', '/v1/../ui/']) {
      const r = await get(p);
      assert.equal(r.status, 401, `${p} -> ${r.status}`);
    }
    // A bearer subprotocol header is no credential for plain requests.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/vms', headers: { 'sec-websocket-protocol': `tsvisor.console, ${bearerProtocol(TOKEN)}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 401);
    assert.equal((await api({ port, token: 'ui-test-token-wrong' }, 'GET', '/v1/vms')).status, 401);
    assert.equal((await api({ port, token: TOKEN }, 'GET', '/v1/vms')).status, 200);
  });
});

describe('console WebSocket with the token as subprotocol', () => {
  test('a booted guest answers through it; wrong or missing tokens get 401', { timeout: budget(600_000) }, async () => {
    const auth = { port, token: TOKEN };
    const r = await api(auth, 'POST', '/v1/vms', { name: 'g', memory: 128, kernel: 'vmlinux', initrd: 'initrd', deterministic: true });
    assert.equal(r.status, 201, r.text);
    assert.equal((await api(auth, 'POST', '/v1/vms/g/start')).status, 200);

    // Refusals first (the VM is running, so only the token can be the reason).
    const wrong = [
      [],
      ['tsvisor.console'],
      ['tsvisor.console', bearerProtocol('ui-test-token-wrong')],
      ['tsvisor.console', bearerProtocol(`${TOKEN}x`)],
      ['tsvisor.console', 'tsvisor.bearer.'],
      [bearerProtocol(TOKEN.toUpperCase())],
    ];
    for (const protocols of wrong) {
      assert.equal((await openWs('/v1/vms/g/console', protocols)).status, 401, `offered ${JSON.stringify(protocols)}`);
    }
    assert.equal((await openWs('/v1/vms/nope/console', ['tsvisor.console', bearerProtocol(TOKEN)])).status, 404);

    // Only the bearer protocol offered: it is echoed (the client must get one of its own).
    const only = await openWs('/v1/vms/g/console', [bearerProtocol(TOKEN)]);
    assert.equal(only.status, 101);
    assert.equal(only.protocol, bearerProtocol(TOKEN));
    only.ws!.terminate();
    // The Authorization header still works for non-browser clients.
    const hdr = await openWs('/v1/vms/g/console', [], { authorization: `Bearer ${TOKEN}` });
    assert.equal(hdr.status, 101);
    hdr.ws!.terminate();

    // As the page does it: the console protocol is the one chosen, so the token is not echoed.
    const con = await openWs('/v1/vms/g/console', ['tsvisor.console', bearerProtocol(TOKEN)]);
    assert.equal(con.status, 101);
    assert.equal(con.protocol, 'tsvisor.console');
    const ws = con.ws!;
    let out = '';
    let closed = false;
    ws.on('message', (b: Buffer) => (out += b.toString('latin1')));
    ws.on('close', () => (closed = true));
    const waitOut = async (what: string, re: RegExp, from: number) => {
      await until(what, () => re.test(out.slice(from)) || closed || d.host.vms.get('g')?.state === 'failed', 480_000, 200);
      assert.match(out.slice(from), re, `${what}; output ends: ${out.slice(-300)}`);
    };
    await waitOut('console bytes', /Linux version/, 0);
    await waitOut('the prompt', new RegExp(`${READY_LINE}[\\s\\S]*# `), 0);
    const mark = out.length;
    ws.send(Buffer.from('echo ui-$((6*7))\n'));
    await waitOut('the answer', /\r?\nui-42\r?\n/, mark);

    // The console closes when the VM stops, and a stopped VM's console is a 409 (after the token check).
    assert.equal((await api(auth, 'POST', '/v1/vms/g/stop')).status, 200);
    await until('console closed', () => closed, 30_000);
    assert.equal((await openWs('/v1/vms/g/console', ['tsvisor.console', bearerProtocol(TOKEN)])).status, 409);
    assert.equal((await openWs('/v1/vms/g/console', ['tsvisor.console', bearerProtocol('ui-test-token-wrong')])).status, 401);
    assert.equal((await api(auth, 'DELETE', '/v1/vms/g')).status, 204);
  });
});

describe('tsvisor serve --listen --token-file', () => {
  test('serves the page on TCP and asks the token for the API', { timeout: budget(60_000) }, async () => {
    const { dir, images } = await makeImages(false);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const daemon = spawn(
      process.execPath,
      [CLI, 'serve', '--socket', join(dir, 's.sock'), '--state-dir', join(dir, 'state'), '--images-dir', images, '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--cpus', '1', '--memory-budget', '256M'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    daemon.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    try {
      await until('daemon up', () => /listening on .* and 127\.0\.0\.1:\d+/.test(err) || daemon.exitCode !== null, 20_000);
      const p = Number(/and 127\.0\.0\.1:(\d+)/.exec(err)?.[1]);
      assert.ok(p > 0, err);
      const page = await api({ port: p }, 'GET', '/ui/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
      assert.equal((await api({ port: p }, 'GET', '/ui/vendor/xterm.mjs')).status, 200);
      assert.equal((await api({ port: p }, 'GET', '/v1/vms')).status, 401);
      assert.equal((await api({ port: p, token: TOKEN }, 'GET', '/v1/vms')).status, 200);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.on('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

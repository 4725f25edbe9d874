// The web console's static files under /ui/: the page, its script and style
// (src/host/ui/ in the repository, found relative to this module, which runs
// from dist/src/host/), xterm.js and uPlot (the graphs) from node_modules. They hold no data, so
// they are served without the token; everything they show comes from the
// API, which still needs it. A fixed table of names: no path from the request
// ever reaches the file system.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const UI_DIR = new URL('../../../src/host/ui/', import.meta.url);

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
const HTML = 'text/html; charset=utf-8';
const MAP = 'application/json; charset=utf-8';

/**
 * xterm.js injects <style> elements and style attributes, so styles need
 * 'unsafe-inline'; scripts come only from this origin, and the page talks
 * only to this origin (fetch and the console WebSocket).
 */
export const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

type Source = { ui: string } | { pkg: string };

const FILES: Record<string, { src: Source; type: string }> = {
  '/ui/': { src: { ui: 'index.html' }, type: HTML },
  '/ui/index.html': { src: { ui: 'index.html' }, type: HTML },
  '/ui/app.js': { src: { ui: 'app.js' }, type: JS },
  '/ui/style.css': { src: { ui: 'style.css' }, type: CSS },
  '/ui/views.js': { src: { ui: 'views.js' }, type: JS },
  '/ui/form.js': { src: { ui: 'form.js' }, type: JS },
  '/ui/charts.js': { src: { ui: 'charts.js' }, type: JS },
  '/ui/format.js': { src: { ui: 'format.js' }, type: JS },
  '/ui/fleet.js': { src: { ui: 'fleet.js' }, type: JS },
  '/ui/vendor/uPlot.esm.js': { src: { pkg: 'uplot/dist/uPlot.esm.js' }, type: JS },
  '/ui/vendor/uPlot.min.css': { src: { pkg: 'uplot/dist/uPlot.min.css' }, type: CSS },
  '/ui/vendor/xterm.mjs': { src: { pkg: '@xterm/xterm/lib/xterm.mjs' }, type: JS },
  '/ui/vendor/xterm.mjs.map': { src: { pkg: '@xterm/xterm/lib/xterm.mjs.map' }, type: MAP },
  '/ui/vendor/xterm.css': { src: { pkg: '@xterm/xterm/css/xterm.css' }, type: CSS },
  '/ui/vendor/addon-fit.mjs': { src: { pkg: '@xterm/addon-fit/lib/addon-fit.mjs' }, type: JS },
  '/ui/vendor/addon-fit.mjs.map': { src: { pkg: '@xterm/addon-fit/lib/addon-fit.mjs.map' }, type: MAP },
};

const require = createRequire(import.meta.url);

function filePath(src: Source): string {
  return 'ui' in src ? fileURLToPath(new URL(src.ui, UI_DIR)) : require.resolve(src.pkg);
}

/** Is this request for the web console (answered by serveUi, without the token)? */
export function isUiPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?')[0];
  return path === '/ui' || path.startsWith('/ui/');
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * `tokenRequired`: the request came where the API needs the token (TCP). The
 * page is told so (data-auth="token" on <html>), so that without a token it
 * asks for one before making any API request that would fail.
 */
export async function serveUi(req: IncomingMessage, res: ServerResponse, log: (m: string) => void, tokenRequired = false): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') return plain(res, 405, `${method} is not allowed on ${path} (allowed: GET, HEAD)\n`, { allow: 'GET, HEAD' });
  if (path === '/ui') return plain(res, 301, 'moved to /ui/\n', { location: '/ui/' });
  const entry = FILES[path];
  if (!entry) return plain(res, 404, `no file ${path} in the web console\n`);
  let file: CachedFile;
  try {
    file = await cached(path, entry, tokenRequired);
  } catch (e) {
    log(`web console: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
    return plain(res, 500, `web console file missing (see the daemon's log)\n`);
  }
  const headers: Record<string, string | number> = {
    'content-type': entry.type,
    // Checked at every load (no-cache), but an unchanged file is a 304 without a body.
    'cache-control': 'no-cache',
    etag: file.etag,
    vary: 'Accept-Encoding',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...(entry.type === HTML ? { 'content-security-policy': UI_CSP, 'x-frame-options': 'DENY' } : {}),
  };
  if (etagMatches(req.headers['if-none-match'], file.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = file.gzip !== null && acceptsGzip(req.headers['accept-encoding']);
  const body = gzip ? file.gzip! : file.body;
  res.writeHead(200, { ...headers, 'content-length': body.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
  res.end(method === 'HEAD' ? undefined : body);
}

/** A file as served: its bytes, compressed once (most of the page's weight is xterm.js and uPlot), and its tag. */
interface CachedFile {
  mtimeMs: number;
  size: number;
  body: Buffer;
  gzip: Buffer | null;
  etag: string;
}

const cache = new Map<string, CachedFile>();

async function cached(path: string, entry: { src: Source; type: string }, tokenRequired: boolean): Promise<CachedFile> {
  const fp = filePath(entry.src);
  const st = await stat(fp);
  // The page differs by listener (data-auth), so it is cached under both.
  const key = `${path}\0${entry.type === HTML && tokenRequired ? 'token' : ''}`;
  const hit = cache.get(key);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
  let body = await readFile(fp);
  if (entry.type === HTML && tokenRequired) body = Buffer.from(body.toString('utf8').replace('<html lang="en">', '<html lang="en" data-auth="token">'));
  const gz = gzipSync(body, { level: 9 });
  const file: CachedFile = {
    mtimeMs: st.mtimeMs,
    size: st.size,
    body,
    // Small files gain nothing from it.
    gzip: gz.length < body.length * 0.9 ? gz : null,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
  };
  cache.set(key, file);
  return file;
}

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';').map((x) => x.trim());
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}

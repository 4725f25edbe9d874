// The web console's static files under /ui/: the page, its script and style
// (src/host/ui/ in the repository, found relative to this module, which runs
// from dist/src/host/), xterm.js and uPlot (the graphs) from node_modules. They hold no data, so
// they are served without the token; everything they show comes from the
// API, which still needs it. A fixed table of names: no path from the request
// ever reaches the file system.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
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
  let body: Buffer;
  try {
    body = await readFile(filePath(entry.src));
  } catch (e) {
    log(`web console: cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
    return plain(res, 500, `web console file missing (see the daemon's log)\n`);
  }
  if (entry.type === HTML && tokenRequired) body = Buffer.from(body.toString('utf8').replace('<html lang="en">', '<html lang="en" data-auth="token">'));
  res.writeHead(200, {
    'content-type': entry.type,
    'content-length': body.length,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...(entry.type === HTML ? { 'content-security-policy': UI_CSP, 'x-frame-options': 'DENY' } : {}),
  });
  res.end(method === 'HEAD' ? undefined : body);
}

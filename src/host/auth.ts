// Bearer tokens for the TCP listener. The token comes from a file (never the
// command line, where other users could read it). Both sides are hashed
// before the comparison so timingSafeEqual always sees equal lengths and the
// time taken says nothing about the token.
//
// Browsers cannot set headers on a WebSocket, so the console upgrade also
// takes the token as a subprotocol: `tsvisor.bearer.<token as base64url>`
// (base64url keeps any token inside the characters a subprotocol may use).
// The client offers `tsvisor.console` next to it, and the server picks that
// one, so the token is not echoed back in the response.

import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';

export const CONSOLE_PROTOCOL = 'tsvisor.console';
export const BEARER_PROTOCOL_PREFIX = 'tsvisor.bearer.';

/**
 * Read the token. A file that group or others may read is refused (the token
 * would not be a secret), unless `insecure` is set, when `warn` says so.
 */
export function readToken(file: string, opts: { insecure?: boolean; warn?: (msg: string) => void } = {}): string {
  // Checked on the open descriptor, so the mode belongs to the file actually read.
  const fd = openSync(file, 'r');
  let text: string;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`token file ${file}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      const msg = `token file ${file}: mode ${mode} lets group or others read it (chmod 600 it, or pass --insecure-token-file)`;
      if (!opts.insecure) throw new Error(msg);
      opts.warn?.(`warning: ${msg}; using it anyway`);
    }
    if (st.size > 4096) throw new Error(`token file ${file}: larger than 4096 bytes`);
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const token = text.trim();
  if (token.length < 16) throw new Error(`token file ${file}: the token must be at least 16 characters`);
  return token;
}

function digest(s: string | Buffer): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Does an Authorization header carry this token? */
export function checkBearer(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = m ? m[1] : '';
  // Compare even when the header is missing, so both paths take the same time.
  return timingSafeEqual(digest(given), digest(token)) && m !== null;
}

/** The subprotocols offered in a Sec-WebSocket-Protocol header (comma-separated, trimmed). */
export function offeredProtocols(header: string | undefined): string[] {
  return (header ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

/** The subprotocol that carries this token, as a client builds it. */
export function bearerProtocol(token: string): string {
  return BEARER_PROTOCOL_PREFIX + Buffer.from(token, 'utf8').toString('base64url');
}

/**
 * Does a Sec-WebSocket-Protocol header carry this token as
 * `tsvisor.bearer.<base64url>`? Exactly one such entry is accepted.
 */
export function checkBearerProtocol(header: string | undefined, token: string): boolean {
  const bearer = offeredProtocols(header).filter((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  const encoded = bearer.length === 1 ? bearer[0].slice(BEARER_PROTOCOL_PREFIX.length) : '';
  // Buffer's base64url decoder skips characters outside the alphabet; insist on a clean encoding.
  const wellFormed = /^[A-Za-z0-9_-]+$/.test(encoded);
  const given = wellFormed ? Buffer.from(encoded, 'base64url') : Buffer.alloc(0);
  return timingSafeEqual(digest(given), digest(token)) && wellFormed;
}

/**
 * The subprotocol the server answers with: `tsvisor.console` when offered,
 * else the bearer one (a client that offered only that must get one of its
 * own back), else none.
 */
export function chooseProtocol(offered: Iterable<string>): string | false {
  let bearer: string | false = false;
  for (const p of offered) {
    if (p === CONSOLE_PROTOCOL) return p;
    if (p.startsWith(BEARER_PROTOCOL_PREFIX) && bearer === false) bearer = p;
  }
  return bearer;
}

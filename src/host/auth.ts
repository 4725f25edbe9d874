// Bearer tokens for the TCP listener. The token comes from a file (never the
// command line, where other users could read it). Both sides are hashed
// before the comparison so timingSafeEqual always sees equal lengths and the
// time taken says nothing about the token.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export function readToken(file: string): string {
  const token = readFileSync(file, 'utf8').trim();
  if (token.length < 16) throw new Error(`token file ${file}: the token must be at least 16 characters`);
  return token;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Does an Authorization header carry this token? */
export function checkBearer(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = m ? m[1] : '';
  // Compare even when the header is missing, so both paths take the same time.
  return timingSafeEqual(digest(given), digest(token)) && m !== null;
}

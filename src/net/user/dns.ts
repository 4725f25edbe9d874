// Just enough of the DNS message format (RFC 1035) to answer A and AAAA
// questions ourselves when no upstream resolver answers.

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;

export interface DnsQuestion {
  id: number;
  name: string;
  type: number;
  cls: number;
  /** End of the question section in the query. */
  end: number;
}

/** Parses a standard query with exactly one question; null if it is anything else. */
export function parseQuery(q: Uint8Array): DnsQuestion | null {
  if (q.length < 12) return null;
  if ((q[2] & 0x80) !== 0 || ((q[2] >>> 3) & 15) !== 0) return null; // a response, or not QUERY
  if (q[4] !== 0 || q[5] !== 1) return null;
  const labels: string[] = [];
  let i = 12;
  let total = 0;
  for (;;) {
    if (i >= q.length) return null;
    const n = q[i];
    if (n === 0) {
      i++;
      break;
    }
    if (n > 63) return null; // compression is not used in questions
    if (i + 1 + n > q.length) return null;
    total += n + 1;
    if (total > 255) return null;
    let label = '';
    for (let k = i + 1; k <= i + n; k++) {
      const c = q[k];
      // Only hostname characters: the name goes to getaddrinfo.
      if (!((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f)) return null;
      label += String.fromCharCode(c);
    }
    labels.push(label);
    i += 1 + n;
  }
  if (i + 4 > q.length || labels.length === 0) return null;
  return { id: (q[0] << 8) | q[1], name: labels.join('.'), type: (q[i] << 8) | q[i + 1], cls: (q[i + 2] << 8) | q[i + 3], end: i + 4 };
}

/** A response to `query` with the given rcode and answer records (each rdata for the question's name and type). */
export function buildResponse(query: Uint8Array, qn: DnsQuestion, rcode: number, rdatas: Uint8Array[], ttl = 60): Uint8Array {
  let size = qn.end;
  for (const r of rdatas) size += 12 + r.length;
  const out = new Uint8Array(size);
  out.set(query.subarray(0, qn.end));
  out[2] = 0x80 | (query[2] & 0x01); // QR, keep RD; not authoritative
  out[3] = 0x80 | (rcode & 15); // RA
  out[6] = rdatas.length >>> 8;
  out[7] = rdatas.length & 0xff;
  out[8] = out[9] = out[10] = out[11] = 0;
  let p = qn.end;
  for (const r of rdatas) {
    out[p++] = 0xc0; // name: pointer to the question at offset 12
    out[p++] = 12;
    out[p++] = qn.type >>> 8;
    out[p++] = qn.type & 0xff;
    out[p++] = 0;
    out[p++] = 1; // class IN
    out[p++] = ttl >>> 24;
    out[p++] = ttl >>> 16;
    out[p++] = ttl >>> 8;
    out[p++] = ttl & 0xff;
    out[p++] = r.length >>> 8;
    out[p++] = r.length & 0xff;
    out.set(r, p);
    p += r.length;
  }
  return out;
}

/** A bare error response for a query we could not even parse. */
export function errorResponse(query: Uint8Array, rcode: number): Uint8Array | null {
  if (query.length < 12) return null;
  const out = query.slice(0, 12);
  out[2] = 0x80 | (query[2] & 0x79);
  out[3] = 0x80 | (rcode & 15);
  for (let i = 4; i < 12; i++) out[i] = 0;
  return out;
}

export function ipv4Bytes(s: string): Uint8Array | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (!m) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = Number(m[i + 1]);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** Textual IPv6 (with ::, and an optional embedded IPv4 tail) to 16 bytes. */
export function ipv6Bytes(s: string): Uint8Array | null {
  let text = s;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipv4Bytes(v4[1]);
    if (!b) return null;
    text = text.slice(0, -v4[1].length) + (((b[0] << 8) | b[1]).toString(16)) + ':' + (((b[2] << 8) | b[3]).toString(16));
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (h: string) => (h === '' ? [] : h.split(':').map((x) => (/^[0-9a-f]{1,4}$/i.test(x) ? parseInt(x, 16) : NaN)));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  const gap = 8 - head.length - rest.length;
  if (halves.length === 2 ? gap < 1 : gap !== 0) return null;
  const words = [...head, ...new Array<number>(halves.length === 2 ? gap : 0).fill(0), ...rest];
  if (words.some((w) => Number.isNaN(w))) return null;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >>> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** End of the single question in a message (names in questions are never compressed); null if malformed. */
export function questionEnd(m: Uint8Array): number | null {
  if (m.length < 12 || m[4] !== 0 || m[5] !== 1) return null;
  let i = 12;
  while (i < m.length && m[i] !== 0) {
    if (m[i] > 63) return null;
    i += m[i] + 1;
  }
  i += 5;
  return i <= m.length ? i : null;
}

/**
 * An answer too large for one datagram toward the guest becomes an empty one
 * with TC set, so the guest's resolver retries over TCP.
 */
export function truncatedResponse(answer: Uint8Array): Uint8Array | null {
  const end = questionEnd(answer);
  if (end === null) return null;
  const out = answer.slice(0, end);
  out[2] |= 0x02;
  for (let i = 6; i < 12; i++) out[i] = 0;
  return out;
}

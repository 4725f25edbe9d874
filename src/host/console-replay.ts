// The recent console output replayed to a console client when it attaches.
// Terminal queries in it (busybox's line editor asks for the cursor position,
// ESC[6n, at every prompt) were already answered by whoever was attached when
// the guest sent them: replayed, a terminal emulator would answer them again
// and its answers would reach the guest as typed keys. So the replay leaves
// out every sequence a terminal answers, and keeps everything else as is.

const ESC = 0x1b;
const BEL = 0x07;

/** CSI final bytes of queries: DSR (n: 5n, 6n, ?6n...), DA (c: c, >c, =c), DECRQM ($p), window reports (t). */
function isCsiQuery(params: Buffer, intermediates: Buffer, final: number): boolean {
  if (final === 0x6e /* n */) return true;
  if (final === 0x63 /* c */) return true;
  if (final === 0x70 /* p */ && intermediates.includes(0x24 /* $ */)) return true;
  // CSI Ps t with Ps >= 11 are reports (size, position, title); lower ones act on the window.
  if (final === 0x74 /* t */ && intermediates.length === 0) {
    const first = Number(params.toString('latin1').split(';')[0] || '0');
    return first >= 11;
  }
  return false;
}

/** OSC strings that ask for a value (the payload ends in `;?`, e.g. colours: ESC ] 11 ; ? BEL). */
function isOscQuery(payload: Buffer): boolean {
  const s = payload.toString('latin1');
  return /;\?$/.test(s) || /;\?;/.test(s);
}

/** DCS strings that ask for a value: DECRQSS (ESC P $ q ...) and XTGETTCAP (ESC P + q ...). */
function isDcsQuery(payload: Buffer): boolean {
  return payload.length >= 2 && (payload[0] === 0x24 || payload[0] === 0x2b) && payload[1] === 0x71;
}

/** Where a string sequence (OSC, DCS) that starts at `from` ends: after BEL or ESC \, or -1 if cut off. */
function stringEnd(buf: Buffer, from: number): { payloadEnd: number; end: number } | null {
  for (let i = from; i < buf.length; i++) {
    if (buf[i] === BEL) return { payloadEnd: i, end: i + 1 };
    if (buf[i] === ESC && buf[i + 1] === 0x5c) return { payloadEnd: i, end: i + 2 };
  }
  return null;
}

/** `buf` without the terminal queries in it. A sequence cut off at the end is dropped too (its answer would be garbage). */
export function stripTerminalQueries(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let copied = 0;
  let i = 0;
  const drop = (from: number, to: number) => {
    out.push(buf.subarray(copied, from));
    copied = to;
  };
  while (i < buf.length) {
    if (buf[i] !== ESC) {
      i++;
      continue;
    }
    const kind = buf[i + 1];
    if (kind === undefined) {
      drop(i, buf.length);
      break;
    }
    if (kind === 0x5b /* [ CSI */) {
      let j = i + 2;
      const p0 = j;
      while (j < buf.length && buf[j] >= 0x30 && buf[j] <= 0x3f) j++;
      const params = buf.subarray(p0, j);
      const i0 = j;
      while (j < buf.length && buf[j] >= 0x20 && buf[j] <= 0x2f) j++;
      const inter = buf.subarray(i0, j);
      if (j >= buf.length) {
        drop(i, buf.length);
        break;
      }
      const final = buf[j];
      if (final >= 0x40 && final <= 0x7e && isCsiQuery(params, inter, final)) drop(i, j + 1);
      i = j + 1;
      continue;
    }
    if (kind === 0x5d /* ] OSC */ || kind === 0x50 /* P DCS */) {
      const e = stringEnd(buf, i + 2);
      if (!e) {
        drop(i, buf.length);
        break;
      }
      const payload = buf.subarray(i + 2, e.payloadEnd);
      if (kind === 0x5d ? isOscQuery(payload) : isDcsQuery(payload)) drop(i, e.end);
      i = e.end;
      continue;
    }
    // ESC Z (DECID) is answered like DA.
    if (kind === 0x5a) drop(i, i + 2);
    i += 2;
  }
  if (copied === 0) return buf;
  out.push(buf.subarray(copied));
  return Buffer.concat(out);
}

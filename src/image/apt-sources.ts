// Finding the Debian archive mirror the host's apt is configured with.
// Reads the one-line format (sources.list, sources.list.d/*.list) and the deb822
// format (sources.list.d/*.sources). The first `deb` source whose suite is a plain
// Debian release (a codename or a release class such as "stable"; no "-updates",
// "-security", "/updates" or "-backports" suffix) names the main archive.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Codenames and release classes of the Debian main archive. */
const DEBIAN_SUITES = new Set([
  'buzz', 'rex', 'bo', 'hamm', 'slink', 'potato', 'woody', 'sarge', 'etch', 'lenny',
  'squeeze', 'wheezy', 'jessie', 'stretch', 'buster', 'bullseye', 'bookworm', 'trixie',
  'forky', 'duke', 'sid',
  'stable', 'testing', 'unstable', 'oldstable', 'oldoldstable', 'experimental',
]);

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  options: Record<string, string>;
  /** Where it was read from, for messages. */
  origin: string;
}

export function isDebianMainSuite(suite: string): boolean {
  return DEBIAN_SUITES.has(suite.toLowerCase());
}

/** Parses one-line format text ("deb [opt=val ...] URI suite component..."). */
export function parseOneLineSources(text: string, origin = 'sources.list'): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const options: Record<string, string> = {};
    for (const kv of (m[2] ?? '').trim().split(/\s+/)) {
      if (!kv) continue;
      const eq = kv.indexOf('=');
      if (eq > 0) options[kv.slice(0, eq).toLowerCase()] = kv.slice(eq + 1);
    }
    out.push({
      types: [m[1]],
      uris: [m[3]],
      suites: [m[4]],
      components: m[5].split(/\s+/).filter(Boolean),
      options,
      origin,
    });
  }
  return out;
}

/** Parses deb822 format text (stanzas of "Field: value", blank-line separated). */
export function parseDeb822Sources(text: string, origin = 'sources'): AptSource[] {
  const out: AptSource[] = [];
  const stanzas: Record<string, string>[] = [];
  let cur: Record<string, string> = {};
  let lastKey = '';
  const flush = (): void => {
    if (Object.keys(cur).length) stanzas.push(cur);
    cur = {};
    lastKey = '';
  };
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#')) continue;
    if (raw.trim() === '') {
      flush();
      continue;
    }
    if (/^\s/.test(raw)) {
      // continuation line
      if (lastKey) cur[lastKey] += ' ' + raw.trim();
      continue;
    }
    const colon = raw.indexOf(':');
    if (colon <= 0) continue;
    lastKey = raw.slice(0, colon).trim().toLowerCase();
    cur[lastKey] = raw.slice(colon + 1).trim();
  }
  flush();
  for (const s of stanzas) {
    const list = (k: string): string[] => (s[k] ?? '').split(/\s+/).filter(Boolean);
    if ((s['enabled'] ?? 'yes').toLowerCase() === 'no') continue;
    const options: Record<string, string> = {};
    for (const [k, v] of Object.entries(s)) {
      if (!['types', 'uris', 'suites', 'components', 'enabled'].includes(k)) options[k] = v;
    }
    out.push({ types: list('types'), uris: list('uris'), suites: list('suites'), components: list('components'), options, origin });
  }
  return out;
}

/** Reads every source the host's apt is configured with, in apt's order. */
export function readHostSources(etcApt = '/etc/apt'): AptSource[] {
  const out: AptSource[] = [];
  const tryRead = (p: string): string | undefined => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  const main = tryRead(join(etcApt, 'sources.list'));
  if (main !== undefined) out.push(...parseOneLineSources(main, join(etcApt, 'sources.list')));
  let names: string[] = [];
  try {
    names = readdirSync(join(etcApt, 'sources.list.d')).sort();
  } catch {
    /* no parts directory */
  }
  for (const n of names) {
    const p = join(etcApt, 'sources.list.d', n);
    if (n.endsWith('.list')) {
      const t = tryRead(p);
      if (t !== undefined) out.push(...parseOneLineSources(t, p));
    } else if (n.endsWith('.sources')) {
      const t = tryRead(p);
      if (t !== undefined) out.push(...parseDeb822Sources(t, p));
    }
  }
  return out;
}

/**
 * The URI of the host's Debian main archive, or undefined. Only URIs apt can
 * fetch directly over http(s), ftp or file are considered.
 */
export function findDebianMirror(sources: AptSource[]): string | undefined {
  for (const s of sources) {
    if (!s.types.includes('deb')) continue;
    if (!s.suites.some(isDebianMainSuite)) continue;
    for (const u of s.uris) {
      if (/^(https?|ftp|file):/i.test(u)) return u.replace(/\/+$/, '');
    }
  }
  return undefined;
}

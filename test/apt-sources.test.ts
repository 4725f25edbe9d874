// Finding the host's Debian main archive in apt source files of both formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findDebianMirror, isDebianMainSuite, parseDeb822Sources, parseOneLineSources, readHostSources,
} from '../src/image/apt-sources.js';

test('suite classification', () => {
  for (const s of ['bookworm', 'trixie', 'sid', 'stable', 'Testing']) assert.ok(isDebianMainSuite(s), s);
  for (const s of ['bookworm-updates', 'bookworm-security', 'bookworm/updates', 'trixie-backports', 'nodistro', 'noble', 'cloud-sdk-bookworm']) {
    assert.ok(!isDebianMainSuite(s), s);
  }
});

test('one-line format with options and comments', () => {
  const src = parseOneLineSources(`
# comment
deb-src http://a.invalid/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://b.invalid/debian-security bookworm-security main
deb [arch=amd64] http://c.invalid/debian/ bookworm main contrib # trailing
`);
  assert.equal(src.length, 3);
  assert.deepEqual(src[1].options, { arch: 'amd64', 'signed-by': '/k.gpg' });
  assert.equal(findDebianMirror(src), 'http://c.invalid/debian');
});

test('deb822 format: disabled stanzas, multiple suites, third-party first', () => {
  const src = parseDeb822Sources(`Types: deb
URIs: https://third.invalid/repo
Suites: nodistro
Components: main

Types: deb
URIs: http://old.invalid/debian
Suites: bookworm
Components: main
Enabled: no

# a comment
Types: deb deb-src
URIs: http://main.invalid/debian
Suites: bookworm-updates
 bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`);
  assert.equal(src.length, 2);
  assert.deepEqual(src[1].suites, ['bookworm-updates', 'bookworm']);
  assert.equal(findDebianMirror(src), 'http://main.invalid/debian');
});

test('reads sources.list before sources.list.d, in name order, skipping other files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-apt-'));
  try {
    mkdirSync(join(dir, 'sources.list.d'));
    writeFileSync(join(dir, 'sources.list'), 'deb http://sec.invalid/debian-security trixie-security main\n');
    writeFileSync(join(dir, 'sources.list.d', 'b.sources'), 'Types: deb\nURIs: http://second.invalid/debian\nSuites: trixie\nComponents: main\n');
    writeFileSync(join(dir, 'sources.list.d', 'a.list'), 'deb http://first.invalid/debian trixie main\n');
    writeFileSync(join(dir, 'sources.list.d', 'c.list.disabled'), 'deb http://never.invalid/debian trixie main\n');
    const all = readHostSources(dir);
    assert.equal(all.length, 3);
    assert.equal(findDebianMirror(all), 'http://first.invalid/debian');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no Debian source: undefined', () => {
  assert.equal(findDebianMirror(parseOneLineSources('deb http://x.invalid/ubuntu noble main\n')), undefined);
});

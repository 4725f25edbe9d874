// `image build` fails closed: an archive apt cannot verify with the host
// keyring is refused (with the way out in the message) unless the caller
// allows unsigned archives, and then it warns. The archive here is a real,
// unsigned apt repository in a temporary directory, read through file:.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureDefaultGuest, ImageBuildError } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';

/** An unsigned trixie repository with an empty riscv64 package list. */
function unsignedRepo(root: string): string {
  const repo = join(root, 'repo');
  const bin = join(repo, 'dists', 'trixie', 'main', 'binary-riscv64');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'Packages'), '');
  const sha = createHash('sha256').update('').digest('hex');
  writeFileSync(
    join(repo, 'dists', 'trixie', 'Release'),
    ['Origin: test', 'Suite: trixie', 'Codename: trixie', `Date: ${new Date().toUTCString()}`, 'Architectures: riscv64', 'Components: main', 'SHA256:', ` ${sha} 0 main/binary-riscv64/Packages`, ''].join('\n'),
  );
  return `file:${repo}`;
}

test('an archive the host keyring cannot verify is refused unless allowed', { timeout: budget(180_000) }, async (t) => {
  if (spawnSync('apt-get', ['--version']).status !== 0) return t.skip('needs apt-get (a Debian-based host)');
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-sig-'));
  try {
    const mirror = unsignedRepo(dir);
    const logs: string[] = [];
    await assert.rejects(
      ensureDefaultGuest({ cacheDir: join(dir, 'c1'), mirror, progress: false, log: (s) => logs.push(s) }),
      (e: unknown) => {
        assert.ok(e instanceof ImageBuildError, String(e));
        assert.match(e.message, /cannot verify the Debian trixie archive signature/);
        assert.match(e.message, /--allow-unsigned/);
        assert.ok(!e.message.includes('\n'));
        return true;
      },
    );
    assert.equal(existsSync(join(dir, 'c1', 'guest')), false);
    assert.ok(!logs.some((l) => /WITHOUT signature checks/.test(l)), logs.join('\n'));

    // Allowed: it warns and goes on (to fail later here, as the archive is empty).
    const logs2: string[] = [];
    await assert.rejects(
      ensureDefaultGuest({ cacheDir: join(dir, 'c2'), mirror, progress: false, log: (s) => logs2.push(s), allowUnsigned: true }),
      (e: unknown) => e instanceof ImageBuildError && !/cannot verify/.test(e.message),
    );
    assert.ok(logs2.some((l) => /warning: .*--allow-unsigned: trusting .* WITHOUT signature checks/.test(l)), logs2.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

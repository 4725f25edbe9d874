// The translation cache kept between boots (--jit-cache on), on the default guest
// booted deterministically: the first boot writes the cache, the second puts
// batches back from it (counters from --stats), and the console prints the same
// bytes cold, warm, with the cache off, and with a cache whose guest bytes or
// module bytes were changed (those batches are refused, the rest still used).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { budget } from './lib/budget.js';
import { batchesBuildId, decodeBatches, encodeBatches } from '../src/jit/warm-start.js';
import { payloadOf, wrap } from '../src/vm/jit-cache.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const READY_LINE = 'tsvisor guest ready';
const COMMANDS = 'uname -m; echo $((6*7))\n';
const ANSWERS = /\r?\nriscv64\r?\n42\r?\n/;
const BOOT_MS = 12 * 60 * 1000;
const ONE_BOOT_MS = BOOT_MS + 3 * 60 * 1000;

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

interface Boot {
  /** Console output up to the answers to COMMANDS. */
  transcript: string;
  /** The --stats report's translation cache line ('' if none). */
  cacheLine: string;
  status: number | null;
}

/** Boot deterministically with --stats, answer COMMANDS at the prompt, power off. */
function boot(dir: string, extra: string[] = []): Promise<Boot> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'run', '--deterministic', '--stats', ...(extra.length ? extra : ['--jit-cache', 'on'])], {
      cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TSVISOR_JIT_CACHE_DIR: dir, TSVISOR_JIT_CACHE: '' },
    });
    live.add(child);
    let out = '';
    let err = '';
    let promptAt = -1;
    let transcript: string | null = null;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no answers within ${BOOT_MS / 1000} s\n${out.slice(-2000)}\n${err.slice(-2000)}`));
    }, budget(BOOT_MS));
    child.stdin.on('error', () => {});
    child.stdout.setEncoding('latin1');
    child.stderr.setEncoding('latin1');
    child.stderr.on('data', (s: string) => (err += s));
    child.stdout.on('data', (s: string) => {
      out += s;
      if (promptAt < 0) {
        const ready = out.indexOf(READY_LINE);
        const m = ready >= 0 ? /\n[^\n]*# /.exec(out.slice(ready)) : null;
        if (m) {
          promptAt = ready + m.index + m[0].length;
          child.stdin.write(COMMANDS);
        }
      } else if (transcript === null) {
        const m = ANSWERS.exec(out.slice(promptAt));
        if (m) {
          transcript = out.slice(0, promptAt + m.index + m[0].length);
          child.stdin.write('poweroff -f\n');
        }
      }
    });
    child.on('close', (status) => {
      live.delete(child);
      clearTimeout(timer);
      if (transcript === null) {
        reject(new Error(`exited (${status}) before answering\n${out.slice(-2000)}\n${err.slice(-2000)}`));
        return;
      }
      const cacheLine = /^ *translation cache .*$/m.exec(err)?.[0] ?? '';
      resolve({ transcript, cacheLine, status });
    });
  });
}

/** "N batches put back" and the refusal counts from a --stats cache line. */
function counts(line: string): { read: number; used: number; changed: number; damaged: number } {
  const n = (re: RegExp) => Number((re.exec(line)?.[1] ?? 'NaN').replace(/,/g, ''));
  return {
    read: n(/in ([\d,]+) batches read/),
    used: n(/([\d,]+) batches put back/),
    changed: n(/([\d,]+) refused: guest code changed/),
    damaged: n(/([\d,]+) refused: damaged/),
  };
}

function sameTranscript(a: Boot, b: Boot, what: string): void {
  if (a.transcript === b.transcript) return;
  let i = 0;
  while (i < a.transcript.length && a.transcript[i] === b.transcript[i]) i++;
  assert.fail(`${what}: console differs at byte ${i}: ${JSON.stringify(a.transcript.slice(i - 40, i + 80))} vs ${JSON.stringify(b.transcript.slice(i - 40, i + 80))}`);
}

describe('translation cache between boots', { concurrency: false }, () => {
  let dir = '';
  let cold: Boot;
  const cacheFile = () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.jitc'));
    assert.equal(files.length, 1, `cache files: ${files.join(', ')}`);
    return join(dir, files[0]);
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsvisor-jitcache-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a cold boot writes the cache', { timeout: budget(ONE_BOOT_MS) }, async () => {
    cold = await boot(dir);
    assert.equal(cold.status, 0);
    assert.ok(cold.transcript.includes('Linux version') && cold.transcript.length > 4000, 'short transcript');
    assert.match(cold.cacheLine, /no file yet/);
    const c = counts(cold.cacheLine);
    assert.equal(c.read, 0);
    assert.ok(statSync(cacheFile()).size > 100_000, 'the cache file is nearly empty');
  });

  test('a warm boot puts batches back and prints the same bytes', { timeout: budget(ONE_BOOT_MS) }, async () => {
    const warm = await boot(dir);
    const c = counts(warm.cacheLine);
    assert.ok(c.read > 50, `batches read: ${warm.cacheLine}`);
    assert.ok(c.used > c.read / 2, `most batches should be put back: ${warm.cacheLine}`);
    assert.equal(c.damaged, 0, warm.cacheLine);
    sameTranscript(cold, warm, 'cold vs warm');
  });

  test('--jit-cache off neither reads nor writes the cache, and prints the same bytes', { timeout: budget(ONE_BOOT_MS) }, async () => {
    const file = cacheFile();
    const before = readFileSync(file);
    const off = await boot(dir, ['--jit-cache', 'off']);
    assert.equal(off.cacheLine, '', 'no cache line in --stats with the cache off');
    assert.ok(readFileSync(file).equals(before), 'the cache file changed');
    sameTranscript(cold, off, 'cold vs cache off');
  });

  test('batches whose guest bytes or module changed are refused; the guest prints the same bytes', { timeout: budget(ONE_BOOT_MS) }, async () => {
    const file = cacheFile();
    const payload = payloadOf(readFileSync(file));
    assert.ok(typeof payload !== 'string', String(payload));
    const id = batchesBuildId(payload)!;
    const batches = decodeBatches(payload, id, 1 << 30);
    assert.ok(Array.isArray(batches), String(batches));
    // Every other batch: one cached guest byte no longer matches RAM. Batch 1: its module is garbage.
    let altered = 0;
    batches.forEach((b, i) => {
      const k = b.blocks.find((x) => x.insns > 0 && x.bytes.length > 0);
      if (i === 1) b.module = new Uint8Array(b.module.length).fill(0x41);
      else if (i % 2 === 0 && k) {
        k.bytes[k.bytes.length >> 1] ^= 0xff;
        altered++;
      }
    });
    writeFileSync(file, wrap(encodeBatches(id, batches)));
    const changed = await boot(dir);
    const c = counts(changed.cacheLine);
    assert.ok(c.changed >= altered / 2, `few refusals for changed code: ${changed.cacheLine}`);
    assert.ok(c.used <= batches.length - altered, `a changed batch was put back: ${changed.cacheLine}`);
    assert.ok(c.used > 0, `the unchanged batches should still be used: ${changed.cacheLine}`);
    sameTranscript(cold, changed, 'cold vs changed cache');
  });

  test('a truncated cache file is not used; the guest prints the same bytes', { timeout: budget(ONE_BOOT_MS) }, async () => {
    const file = cacheFile();
    const whole = readFileSync(file);
    writeFileSync(file, whole.subarray(0, whole.length >> 1));
    const cut = await boot(dir);
    assert.match(cut.cacheLine, /file not used: checksum mismatch/);
    assert.equal(counts(cut.cacheLine).used, 0);
    sameTranscript(cold, cut, 'cold vs truncated cache');
  });
});

// Shared steps of the Debian image builders (the root disk in rootfs.ts, the
// userland disk in userland-disk.ts): finding host tools, running them with
// their output handed over line by line, debootstrap's first stage (download
// and unpack only, nothing run) and mkfs.ext4 -d of the unpacked tree.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { ARCH, KEYRING, SUITE, unverifiedArchiveMessage } from './default-guest.js';
import { ImageBuildError } from './errors.js';
import { rawToQcow2, type ConvertResult } from './rootfs-disk.js';

export function hasTool(name: string): boolean {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (d && existsSync(join(d, name))) return true;
  }
  // debootstrap and mkfs live in sbin, which a user's PATH may lack.
  return ['/usr/sbin', '/sbin'].some((d) => existsSync(join(d, name)));
}

export function toolPath(name: string): string {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (existsSync(join(d, name))) return join(d, name);
  return name;
}

export interface Proc {
  code: number;
  out: string;
}

/** Runs a command, handing each output line (stdout and stderr) to onLine; resolves with the exit code and the output. */
export function runLines(cmd: string, args: string[], onLine: (line: string) => void,
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; stopWhen?: RegExp; graceMs?: number } = {}): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', ...opts.env },
    });
    let out = '';
    const partial = ['', ''];
    const feed = (i: number) => (c: Buffer) => {
      const text = partial[i] + c.toString('utf8');
      out += c.toString('utf8');
      if (out.length > 8 << 20) out = out.slice(-(4 << 20));
      const lines = text.split(/\r?\n/);
      partial[i] = lines.pop() ?? '';
      for (const l of lines) {
        onLine(l);
        if (opts.stopWhen?.test(l) && !stopTimer) {
          // Done (and synced): give the guest a while to power off, then stop the VM.
          stopTimer = setTimeout(() => child.kill('SIGTERM'), opts.graceMs ?? 120_000);
        }
      }
    };
    let stopTimer: NodeJS.Timeout | undefined;
    child.stdout.on('data', feed(0));
    child.stderr.on('data', feed(1));
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new ImageBuildError(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (stopTimer) clearTimeout(stopTimer);
      for (const p of partial) if (p) onLine(p);
      if (timedOut) {
        reject(new ImageBuildError(`${cmd} ${args[0] ?? ''} timed out after ${Math.round((opts.timeoutMs ?? 0) / 1000)}s`));
        return;
      }
      resolve({ code: code ?? (signal ? 128 : 1), out });
    });
  });
}

export function lastLines(text: string, n: number): string {
  return text.split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(-n).join('\n');
}

export const seconds = (t0: number): number => Math.round((Date.now() - t0) / 100) / 10;

/** A status line: rewritten in place on a terminal, plain lines otherwise. */
export class Status {
  private live = false;
  constructor(private readonly tty: boolean, private readonly log: (s: string) => void) {}
  /** A transient status (only shown on a terminal). */
  set(text: string): void {
    if (!this.tty) return;
    const cols = process.stderr.columns ?? 100;
    process.stderr.write(`\r\x1b[K${text.slice(0, cols - 1)}`);
    this.live = true;
  }
  /** A line that stays. */
  line(text: string): void {
    if (this.live) {
      process.stderr.write('\r\x1b[K');
      this.live = false;
    }
    this.log(text);
  }
  done(): void {
    if (this.live) process.stderr.write('\r\x1b[K');
    this.live = false;
  }
}

/**
 * Root privileges: debootstrap creates device nodes and root-owned files, and
 * mkfs.ext4 -d copies the owners it finds. Without root, both run under one
 * fakeroot session (its state file carries the faked owners from one to the other).
 */
export function privileged(work: string): (cmd: string, args: string[]) => [string, string[]] {
  if (process.getuid?.() === 0) return (cmd, args) => [toolPath(cmd), args];
  const state = join(work, 'fakeroot.state');
  return (cmd, args) => ['fakeroot', [existsSync(state) ? '-i' : '-s', state, ...(existsSync(state) ? ['-s', state] : []), toolPath(cmd), ...args]];
}

/**
 * debootstrap --foreign (minbase plus `include`) into `tree`: downloads,
 * verifies against the host keyring and unpacks; runs no package's scripts.
 * Returns the names of the packages unpacked.
 */
export async function stage1(tree: string, mirror: string, include: string[], wrap: ReturnType<typeof privileged>, status: Status, allowUnsigned: boolean): Promise<string[]> {
  const args = ['--foreign', `--arch=${ARCH}`, '--variant=minbase', `--include=${include.join(',')}`];
  if (existsSync(KEYRING)) {
    args.push(`--keyring=${KEYRING}`);
  } else if (allowUnsigned) {
    status.line(`warning: ${KEYRING} not found; --allow-unsigned: packages are NOT verified (--no-check-gpg)`);
    args.push('--no-check-gpg');
  } else {
    throw new ImageBuildError(unverifiedArchiveMessage(`${KEYRING} is missing`));
  }
  args.push(SUITE, tree, mirror);
  status.line(`stage 1: debootstrap --foreign ${SUITE} ${ARCH} (minbase + ${include.join(', ')}) from ${mirror}`);
  let retrieved = 0;
  let extracted = 0;
  let phase = '';
  const [cmd, argv] = wrap('debootstrap', args);
  const r = await runLines(cmd, argv, (l) => {
    const m = /^I: (Retrieving|Validating|Extracting) (\S+)/.exec(l);
    if (m) {
      if (m[1] === 'Retrieving') retrieved++;
      if (m[1] === 'Extracting') extracted++;
      const p = m[1] === 'Extracting' ? 'extracting' : 'downloading';
      if (p !== phase) {
        phase = p;
        status.line(`stage 1: ${p} packages...`);
      }
      status.set(`  ${m[1].toLowerCase()} ${m[2]} (${m[1] === 'Extracting' ? extracted : retrieved})`);
      return;
    }
    if (/^[EW]: /.test(l)) status.line(`  ${l}`);
  });
  status.done();
  if (r.code !== 0) {
    const why = lastLines(r.out.split('\n').filter((l) => /^E: /.test(l)).join('\n') || r.out, 3);
    let hint = '';
    if (/Release signed by unknown key|signature/i.test(r.out)) hint = ' (the host keyring lacks the trixie keys: upgrade debian-archive-keyring)';
    throw new ImageBuildError(`debootstrap (first stage) failed: ${why.replace(/\n/g, ' | ')}${hint}`);
  }
  const pkgs = (await readFile(join(tree, 'debootstrap', 'debpaths'), 'utf8').catch(() => ''))
    .split('\n').map((l) => l.split(' ')[0]).filter(Boolean).sort();
  status.line(`stage 1: ${retrieved} packages downloaded, ${extracted} unpacked`);
  return pkgs;
}

/** A sparse raw ext4 image of `size` bytes holding `tree`, with volume label `label`. */
export async function makeExt4(tree: string, raw: string, size: number, label: string, wrap: ReturnType<typeof privileged>): Promise<void> {
  const fh = await open(raw, 'w');
  await fh.truncate(size);
  await fh.close();
  // lazy_*_init=0: write the inode tables and journal now, so the guest's
  // kernel does not spend its first minutes zeroing them in the background.
  const [cmd, argv] = wrap('mkfs.ext4', ['-q', '-F', '-L', label, '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', tree, raw]);
  const r = await runLines(cmd, argv, () => {});
  if (r.code !== 0) throw new ImageBuildError(`mkfs.ext4 failed: ${lastLines(r.out, 2).replace(/\n/g, ' | ')}`);
}

/**
 * Put a finished build in place: `moves` (temporary path, final path) first,
 * then the manifest, whose presence is what makes the cached build valid; an
 * interrupted publish leaves no manifest, so the next call builds again.
 */
export async function publishBuild(dir: string, manifestName: string, manifest: unknown, moves: [string, string][]): Promise<void> {
  await rm(join(dir, manifestName), { force: true });
  for (const [from, to] of moves) {
    await rm(to, { recursive: true, force: true });
    await rename(from, to);
  }
  await writeFile(join(dir, `${manifestName}.tmp`), JSON.stringify(manifest, null, 2) + '\n');
  await rename(join(dir, `${manifestName}.tmp`), join(dir, manifestName));
}

/** The qcow2 step of a disk build: `raw` becomes `out` (data clusters only), with its status line. */
export async function convertToQcow2(raw: string, out: string, status: Status): Promise<ConvertResult & { fileSize: number; seconds: number }> {
  const t = Date.now();
  await rm(out, { force: true });
  const conv = rawToQcow2(raw, out);
  const fileSize = (await stat(out)).size;
  const sc = seconds(t);
  status.line(`qcow2: ${(conv.copied / 1048576).toFixed(1)} MiB of data in a ${(conv.size / 1073741824).toFixed(1)} GiB disk (${sc}s)`);
  return { ...conv, fileSize, seconds: sc };
}

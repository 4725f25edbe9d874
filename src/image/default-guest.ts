// The default guest: a Debian riscv64 kernel plus a busybox initramfs, built
// from Debian packages fetched with the host's apt-get under a private
// configuration (the host's own apt state is never touched) and cached under
// the user's cache directory.

import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import {
  access, mkdir, open, readFile, readdir, rename, rm, stat, writeFile,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import cliProgress from 'cli-progress';
import { findDebianMirror, readHostSources } from './apt-sources.js';
import { GUEST_MODULES, buildInitramfs } from './initramfs.js';
import { selectModules } from './modules.js';
import { acquireBuildLock } from './build-lock.js';
import { panicSymbolsFor } from '../machine/kernel-symbols.js';

import { ImageBuildError } from './errors.js';
import { classifyExecutable } from '../machine/loader.js';

export { ImageBuildError };

export interface EnsureGuestOptions {
  /** Debian archive URI; default: the host apt's main Debian source. */
  mirror?: string;
  /** Rebuild even if a valid guest is cached. */
  force?: boolean;
  /** Default: $XDG_CACHE_HOME/tsvisor or ~/.cache/tsvisor. */
  cacheDir?: string;
  /** Show a progress bar (only when stdout is a TTY). Default true. */
  progress?: boolean;
  /** Status lines; default: stderr. */
  log?: (s: string) => void;
  /**
   * Go on without verifying the archive's signature when the host keyring
   * cannot (with a warning). Off by default: an unverified archive is refused.
   */
  allowUnsigned?: boolean;
}

export interface DefaultGuest {
  kernel: string;
  initrd: string;
  modulesDir: string;
  version: string;
  /** The kernel's System.map (its panic() is watched), when it could be fetched. */
  systemMap?: string;
}

export const SUITE = 'trixie';
export const ARCH = 'riscv64';
export const KERNEL_META = 'linux-image-riscv64';
export const BUSYBOX_PKG = 'busybox-static';
export const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const MANIFEST = 'manifest.json';
/**
 * Bump when the guest's contents change (e.g. the init script), so caches are
 * rebuilt. A cache from REFRESHABLE_FORMAT on gets only a new initramfs, made
 * from its own kernel modules and busybox (no download): only the initramfs
 * changed since then. Format 6: the buttons handler and virtio_input, evdev.
 */
const MANIFEST_FORMAT = 6;
const REFRESHABLE_FORMAT = 5;
const GUEST_DIR = 'guest';

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface GuestManifest {
  format: number;
  createdAt: string;
  mirror: string;
  suite: string;
  arch: string;
  kernelVersion: string;
  packages: Record<string, { version: string; filename: string; size: number; sha256: string }>;
  /** systemMap is absent from guests built before it was kept, or when it could not be fetched. */
  files: { kernel: ManifestFile; initrd: ManifestFile; busybox: ManifestFile; systemMap?: ManifestFile };
  /** Why the System.map is missing (it is not fetched again until a forced build). */
  systemMapUnavailable?: string;
  modulesDir: string;
  initramfsModules: string[];
  builtinModules: string[];
  missingModules: string[];
}

/** $XDG_CACHE_HOME/tsvisor, or ~/.cache/tsvisor. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache');
  return join(base, 'tsvisor');
}

// ---------------------------------------------------------------- helpers

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

async function describeFile(dir: string, rel: string): Promise<ManifestFile> {
  const p = join(dir, rel);
  return { path: rel, size: (await stat(p)).size, sha256: await sha256File(p) };
}

function hasTool(name: string): boolean {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (d && existsSync(join(d, name))) return true;
  }
  return false;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, LC_ALL: 'C', ...env }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new ImageBuildError(`cannot run ${cmd}: ${err.message}`));
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

function firstErrorLine(r: RunResult): string {
  const lines = (r.stderr + '\n' + r.stdout).split('\n').map((l) => l.trim()).filter(Boolean);
  const strip = (l: string): string => l.replace(/^(E|W|Err:\d+):\s*/, '').replace(/\s+/g, ' ');
  const e = lines.find((l) => /^E:/.test(l)) ?? lines.find((l) => /^W: Failed to fetch/.test(l));
  if (e) return strip(e);
  const i = lines.findIndex((l) => /^Err:/.test(l));
  if (i >= 0) return strip(lines[i]) + (lines[i + 1] && !/^\w+:/.test(lines[i + 1]) ? ': ' + lines[i + 1] : '');
  return strip(lines.find((l) => /^W:/.test(l)) ?? lines[0] ?? `exit code ${r.code}`);
}

function mib(n: number): string {
  return (n / (1 << 20)).toFixed(1) + ' MiB';
}

// ---------------------------------------------------------------- cache validity

async function readManifest(guestDir: string, formats = [MANIFEST_FORMAT]): Promise<GuestManifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(guestDir, MANIFEST), 'utf8')) as GuestManifest;
    return m && formats.includes(m.format) ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A cached guest of an older format whose kernel, busybox and modules are
 * intact, where only the initramfs is out of date: build the initramfs again
 * from them and bring the manifest to this format. False when the cache is not
 * such a guest (a full build is needed).
 */
async function refreshInitramfs(cacheDir: string, log: (s: string) => void): Promise<boolean> {
  const g = join(cacheDir, GUEST_DIR);
  const formats = Array.from({ length: MANIFEST_FORMAT - REFRESHABLE_FORMAT }, (_, i) => REFRESHABLE_FORMAT + i);
  const m = await readManifest(g, formats);
  if (!m?.files?.busybox || !(await fileMatches(g, m.files.kernel, true)) || !(await fileMatches(g, m.files.busybox, true))) return false;
  const modulesDir = join(g, m.modulesDir);
  if (!existsSync(modulesDir)) return false;
  log(`updating the default guest's initramfs (cache format ${m.format} -> ${MANIFEST_FORMAT}) from its cached kernel modules and busybox`);
  const sel = await selectModules(modulesDir, GUEST_MODULES).catch(() => null);
  if (!sel) return false;
  if (sel.missing.length) log(`warning: modules not found: ${sel.missing.join(', ')}`);
  const initrd = buildInitramfs({
    busybox: await readFile(join(g, m.files.busybox.path)),
    kernelVersion: m.kernelVersion,
    modules: sel.modules,
    loadNames: sel.modules.map((x) => x.name),
    modulesDep: sel.modulesDep,
    modulesAlias: sel.modulesAlias,
  });
  const rel = m.files.initrd.path;
  await writeFile(join(g, rel + '.tmp'), initrd);
  await rename(join(g, rel + '.tmp'), join(g, rel));
  const next: GuestManifest = {
    ...m,
    format: MANIFEST_FORMAT,
    files: { ...m.files, initrd: await describeFile(g, rel) },
    initramfsModules: sel.modules.map((x) => x.path),
    builtinModules: sel.builtin,
    missingModules: sel.missing,
  };
  await writeFile(join(g, MANIFEST + '.tmp'), JSON.stringify(next, null, 2) + '\n');
  await rename(join(g, MANIFEST + '.tmp'), join(g, MANIFEST));
  return true;
}

/** A RISC-V Linux Image (the loader's detector). */
export function isRiscvImage(head: Uint8Array): boolean {
  return classifyExecutable(head) === 'image';
}

async function fileMatches(dir: string, f: ManifestFile, hash: boolean): Promise<boolean> {
  try {
    const p = join(dir, f.path);
    if ((await stat(p)).size !== f.size) return false;
    return !hash || (await sha256File(p)) === f.sha256;
  } catch {
    return false;
  }
}

/** The cached guest in cacheDir, if it is complete and intact; undefined otherwise. */
export async function checkCachedGuest(cacheDir: string): Promise<DefaultGuest | undefined> {
  const g = join(cacheDir, GUEST_DIR);
  const m = await readManifest(g);
  if (!m) return undefined;
  const f = m.files;
  if (!f || !(await fileMatches(g, f.kernel, true)) || !(await fileMatches(g, f.initrd, true))) return undefined;
  try {
    if (!(await stat(join(g, m.modulesDir))).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const mapOk = f.systemMap !== undefined && (await fileMatches(g, f.systemMap, false));
  return {
    kernel: join(g, f.kernel.path),
    initrd: join(g, f.initrd.path),
    modulesDir: join(g, m.modulesDir),
    version: m.kernelVersion,
    systemMap: mapOk ? join(g, f.systemMap!.path) : undefined,
  };
}

/** The manifest of the cached guest (or undefined), for `image` subcommands. */
export async function readGuestManifest(cacheDir = defaultCacheDir()): Promise<GuestManifest | undefined> {
  return readManifest(join(cacheDir, GUEST_DIR));
}

// ---------------------------------------------------------------- locking

function acquireLock(dir: string, log: (s: string) => void): Promise<() => Promise<void>> {
  return acquireBuildLock(dir, 'tsvisor', 3600, log);
}

// ---------------------------------------------------------------- private apt

class PrivateApt {
  readonly root: string;
  readonly conf: string;
  constructor(cacheDir: string, readonly mirror: string) {
    this.root = join(cacheDir, 'apt');
    this.conf = join(this.root, 'apt.conf');
  }

  private env(): NodeJS.ProcessEnv {
    return { APT_CONFIG: this.conf, DEBIAN_FRONTEND: 'noninteractive' };
  }

  /** Proxy settings of the host's apt, carried over so downloads work the same way. */
  private async hostProxyLines(): Promise<string[]> {
    const r = await run('apt-config', ['dump']).catch(() => undefined);
    if (!r || r.code !== 0) return [];
    return r.stdout
      .split('\n')
      .filter((l) => /^Acquire::(https?|ftp)::Proxy(::[^ ]+)? /.test(l))
      .map((l) => l.trim() + (l.trim().endsWith(';') ? '' : ';'));
  }

  async setup(trust: 'keyring' | 'unsigned'): Promise<void> {
    const r = this.root;
    for (const d of ['state/lists/partial', 'cache/archives/partial', 'etc/sources.list.d', 'etc/apt.conf.d',
      'etc/preferences.d', 'etc/trusted.gpg.d', 'log']) {
      await mkdir(join(r, d), { recursive: true });
    }
    await writeFile(join(r, 'state/status'), '');
    await writeFile(join(r, 'etc/sources.list'), '# tsvisor: see sources.list.d\n');
    const q = (s: string): string => JSON.stringify(s);
    const lines = [
      '// tsvisor private apt configuration: nothing here touches the host apt state.',
      `Dir::State ${q(join(r, 'state'))};`,
      `Dir::State::Lists ${q(join(r, 'state/lists'))};`,
      `Dir::State::status ${q(join(r, 'state/status'))};`,
      `Dir::Cache ${q(join(r, 'cache'))};`,
      `Dir::Cache::archives ${q(join(r, 'cache/archives'))};`,
      `Dir::Etc ${q(join(r, 'etc'))};`,
      `Dir::Etc::Main ${q(join(r, 'etc/apt.conf'))};`,
      `Dir::Etc::Parts ${q(join(r, 'etc/apt.conf.d'))};`,
      `Dir::Etc::SourceList ${q(join(r, 'etc/sources.list'))};`,
      `Dir::Etc::SourceParts ${q(join(r, 'etc/sources.list.d'))};`,
      `Dir::Etc::Preferences ${q(join(r, 'etc/preferences'))};`,
      `Dir::Etc::PreferencesParts ${q(join(r, 'etc/preferences.d'))};`,
      `Dir::Etc::Trusted ${q(join(r, 'etc/trusted.gpg'))};`,
      `Dir::Etc::TrustedParts ${q(join(r, 'etc/trusted.gpg.d'))};`,
      `Dir::Log ${q(join(r, 'log'))};`,
      `APT::Architecture "${ARCH}";`,
      `APT::Architectures { "${ARCH}"; };`,
      'Acquire::Languages "none";',
      'Acquire::GzipIndexes "true";', // keep the package lists compressed on disk
      'Dir::Cache::srcpkgcache "";',
      'Acquire::Retries "2";',
      'APT::Get::List-Cleanup "true";',
      ...(await this.hostProxyLines()),
    ];
    // As root apt drops to an unprivileged user for downloads, which cannot
    // write into a private cache inside a user's home directory.
    if (process.getuid?.() === 0) lines.push('APT::Sandbox::User "root";');
    await writeFile(this.conf, lines.join('\n') + '\n');
    const src = [
      'Types: deb',
      `URIs: ${this.mirror}`,
      `Suites: ${SUITE}`,
      'Components: main',
      `Architectures: ${ARCH}`,
      trust === 'keyring' ? `Signed-By: ${KEYRING}` : 'Trusted: yes',
      '',
    ].join('\n');
    await writeFile(join(r, 'etc/sources.list.d/tsvisor.sources'), src);
  }

  async update(): Promise<RunResult> {
    return run('apt-get', ['-q', 'update'], this.env());
  }

  async cache(args: string[]): Promise<RunResult> {
    return run('apt-cache', args, this.env());
  }

  async get(args: string[], cwd?: string): Promise<RunResult> {
    if (!cwd) return run('apt-get', args, this.env());
    return new Promise((resolve, reject) => {
      const p = spawn('apt-get', args, { cwd, env: { ...process.env, LC_ALL: 'C', ...this.env() } });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('error', (e) => reject(new ImageBuildError(`cannot run apt-get: ${e.message}`)));
      p.on('close', (code) => resolve({ code: code ?? 1, stdout: out, stderr: err }));
    });
  }

  /** Fields of a package's candidate version. */
  async show(pkg: string): Promise<Record<string, string>> {
    const r = await this.cache(['show', '--no-all-versions', pkg]);
    if (r.code !== 0 || !r.stdout.trim()) {
      throw new ImageBuildError(`package ${pkg} not found in ${SUITE}/${ARCH} at ${this.mirror}`);
    }
    const fields: Record<string, string> = {};
    let last = '';
    for (const line of r.stdout.split('\n')) {
      if (line === '') break; // first stanza only
      if (/^\s/.test(line)) {
        if (last) fields[last] += '\n' + line.trim();
        continue;
      }
      const c = line.indexOf(':');
      if (c > 0) {
        last = line.slice(0, c);
        fields[last] = line.slice(c + 1).trim();
      }
    }
    return fields;
  }
}

/** Whether the host keyring file seems to carry the trixie archive key. */
async function hostKeyringHasTrixie(): Promise<boolean> {
  try {
    await access(KEYRING);
  } catch {
    return false;
  }
  // debian-archive-keyring installs one fragment per release next to the full keyring.
  return existsSync('/usr/share/keyrings/debian-archive-trixie-stable.gpg') ||
    existsSync('/usr/share/keyrings/debian-archive-trixie-automatic.gpg');
}

async function tryUpgradeKeyring(log: (s: string) => void): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  log('the host keyring lacks the trixie archive key; upgrading debian-archive-keyring...');
  const r = await run('apt-get', ['-y', '-q', 'install', 'debian-archive-keyring'], { DEBIAN_FRONTEND: 'noninteractive' });
  return r.code === 0 && hostKeyringHasTrixie();
}

// ---------------------------------------------------------------- downloads

interface DebUri {
  uri: string;
  filename: string;
  size: number;
  sha256: string;
}

function parsePrintUris(out: string): DebUri[] {
  const res: DebUri[] = [];
  for (const line of out.split('\n')) {
    const m = /^'([^']+)'\s+(\S+)\s+(\d+)\s+(\S+)/.exec(line.trim());
    if (!m) continue;
    const h = /(?:^|\s)SHA256:([0-9a-f]{64})/i.exec(m[4]);
    if (!h) throw new ImageBuildError(`apt printed no SHA256 for ${m[2]}`);
    res.push({ uri: m[1], filename: decodeURIComponent(m[2]), size: Number(m[3]), sha256: h[1].toLowerCase() });
  }
  return res;
}

interface Progress {
  start(name: string, total: number): void;
  update(done: number): void;
  stop(): void;
}

function makeProgress(enabled: boolean, log: (s: string) => void): Progress {
  if (enabled) {
    let bar: cliProgress.SingleBar | undefined;
    return {
      start(name, total) {
        bar = new cliProgress.SingleBar(
          {
            format: '  {bar} {percentage}% | {doneMiB}/{totalMiB} MiB | {name}',
            hideCursor: true,
            clearOnComplete: false,
            stream: process.stdout,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { name, doneMiB: '0.0', totalMiB: (total / 1048576).toFixed(1) });
      },
      update(done) {
        bar?.update(done, { doneMiB: (done / 1048576).toFixed(1) });
      },
      stop() {
        bar?.stop();
        bar = undefined;
      },
    };
  }
  let total = 0;
  let name = '';
  let nextMark = 0;
  return {
    start(n, t) {
      name = n;
      total = t;
      nextMark = 0.25;
      log(`downloading ${n} (${mib(t)})`);
    },
    update(done) {
      if (total > (8 << 20) && done / total >= nextMark && done < total) {
        log(`  ${name}: ${Math.floor((done / total) * 100)}%`);
        while (done / total >= nextMark) nextMark += 0.25;
      }
    },
    stop() {},
  };
}

async function fetchDeb(d: DebUri, dest: string, progress: Progress): Promise<void> {
  const part = dest + '.part';
  const hash = createHash('sha256');
  let done = 0;
  progress.start(d.filename, d.size);
  try {
    const res = await fetch(d.uri);
    if (!res.ok || !res.body) throw new ImageBuildError(`download of ${d.uri} failed: HTTP ${res.status}`);
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    body.on('data', (c: Buffer) => {
      hash.update(c);
      done += c.length;
      progress.update(done);
    });
    await pipeline(body, createWriteStream(part));
  } finally {
    progress.stop();
  }
  const got = hash.digest('hex');
  if (done !== d.size || got !== d.sha256) {
    await rm(part, { force: true });
    throw new ImageBuildError(`download of ${d.filename} is corrupt (size ${done}/${d.size}, sha256 mismatch: ${got !== d.sha256})`);
  }
  await rename(part, dest);
}

async function downloadDebs(apt: PrivateApt, pkgs: string[], debDir: string, progress: Progress,
  log: (s: string) => void): Promise<Map<string, { path: string; uri: DebUri }>> {
  const r = await apt.get(['-q', 'download', '--print-uris', ...pkgs]);
  if (r.code !== 0) throw new ImageBuildError(`apt-get download failed: ${firstErrorLine(r)}`);
  const uris = parsePrintUris(r.stdout);
  if (uris.length !== pkgs.length) {
    throw new ImageBuildError(`apt-get resolved ${uris.length} of ${pkgs.length} packages (${pkgs.join(', ')})`);
  }
  await mkdir(debDir, { recursive: true });
  const out = new Map<string, { path: string; uri: DebUri }>();
  for (const d of uris) {
    const dest = join(debDir, d.filename);
    const pkg = pkgs.find((p) => d.filename.startsWith(p + '_')) ?? d.filename.split('_')[0];
    out.set(pkg, { path: dest, uri: d });
    if (existsSync(dest) && (await stat(dest)).size === d.size && (await sha256File(dest)) === d.sha256) {
      log(`using cached ${d.filename}`);
      continue;
    }
    if (/^https?:/i.test(d.uri)) {
      try {
        await fetchDeb(d, dest, progress);
        continue;
      } catch (e) {
        log(`direct download failed (${(e as Error).message}); retrying through apt-get`);
      }
    }
    // Other URI schemes, proxies, or a failed direct download: let apt fetch it.
    log(`downloading ${d.filename} (${mib(d.size)}) with apt-get`);
    const g = await apt.get(['-q', 'download', pkg], debDir);
    if (g.code !== 0) throw new ImageBuildError(`download of ${pkg} failed: ${firstErrorLine(g)}`);
    // apt names the file itself (escaping ':' in epochs as %3a)
    const found = (await readdir(debDir)).find((n) => n.startsWith(pkg + '_') && n.endsWith(`_${ARCH}.deb`) &&
      decodeURIComponent(n) === d.filename);
    const path = found ? join(debDir, found) : dest;
    if (!existsSync(path) || (await sha256File(path)) !== d.sha256) {
      throw new ImageBuildError(`download of ${pkg} failed: checksum mismatch`);
    }
    if (path !== dest) await rename(path, dest);
  }
  return out;
}

// ---------------------------------------------------------------- System.map

/**
 * Debian's linux-image package carries only a stub System.map; the real one
 * is the first file of the matching -dbg package (about 1 GB, checked against
 * the archive's signed index like every package here). Download it, take the
 * map out, check that it belongs to `kernelPath`, and drop the package.
 */
async function fetchSystemMap(apt: PrivateApt, kernelPkg: string, version: string, kernelPath: string, destDir: string,
  debDir: string, progress: Progress, log: (s: string) => void): Promise<ManifestFile> {
  const dbg = `${kernelPkg}-dbg`;
  log(`fetching the kernel's System.map from ${dbg} (for kernel panic detection)`);
  try {
    const debs = await downloadDebs(apt, [dbg], debDir, progress, log);
    const deb = debs.get(dbg)!.path;
    const rel = `System.map-${version}`;
    await extractFirstMember(deb, `./usr/lib/debug/boot/${rel}`, join(destDir, rel));
    const check = panicSymbolsFor(await readFile(join(destDir, rel), 'latin1'), await readFile(kernelPath));
    if (!check.ok) {
      await rm(join(destDir, rel), { force: true });
      throw new ImageBuildError(check.error);
    }
    return await describeFile(destDir, rel);
  } finally {
    await rm(debDir, { recursive: true, force: true });
  }
}

/** Write `member` of a .deb's data archive to `dest`, reading the archive only up to that member. */
function extractFirstMember(deb: string, member: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(dest);
    // Its own process group: dpkg-deb forks a decompressor, which must end with it
    // (killing dpkg-deb alone left the decompressor running through the 1 GB archive).
    const dpkg = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    const tar = spawn('tar', ['-xO', '--occurrence=1', '-f', '-', member], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    dpkg.stdout.pipe(tar.stdin);
    // tar stops after the member; dpkg-deb then meets a closed pipe, which is expected.
    tar.stdin.on('error', () => {});
    dpkg.on('error', (e) => reject(new ImageBuildError(`cannot run dpkg-deb: ${e.message}`)));
    tar.on('error', (e) => reject(new ImageBuildError(`cannot run tar: ${e.message}`)));
    tar.stderr.on('data', (d) => (err += d));
    tar.stdout.pipe(out);
    tar.on('close', (code) => {
      dpkg.stdout.unpipe(tar.stdin);
      dpkg.stdout.destroy();
      try {
        if (dpkg.pid !== undefined) process.kill(-dpkg.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      out.on('close', () => {
        if (code === 0) resolve();
        else reject(new ImageBuildError(`extracting ${member} failed: ${err.trim().split('\n')[0] || `tar exit code ${code}`}`));
      });
      out.end();
    });
  });
}

/** A cached guest built without its System.map: fetch the map now (once; a failure is remembered). */
async function addSystemMap(cacheDir: string, mirror: string, progressOn: boolean, log: (s: string) => void): Promise<void> {
  const g = join(cacheDir, GUEST_DIR);
  const m = await readManifest(g);
  if (!m || m.files.systemMap || m.systemMapUnavailable) return;
  const kpkg = Object.keys(m.packages).find((n) => n !== KERNEL_META && /^linux-image-\d/.test(n));
  try {
    if (!kpkg) throw new ImageBuildError('the manifest names no kernel package');
    const apt = new PrivateApt(cacheDir, mirror);
    await apt.setup(existsSync(KEYRING) ? 'keyring' : 'unsigned');
    const up = await apt.update();
    if (up.code !== 0) throw new ImageBuildError(`apt-get update failed: ${firstErrorLine(up)}`);
    m.files.systemMap = await fetchSystemMap(apt, kpkg, m.kernelVersion, join(g, m.files.kernel.path), g,
      join(cacheDir, 'debs-dbg'), makeProgress(progressOn, log), log);
  } catch (e) {
    m.systemMapUnavailable = e instanceof Error ? e.message.split('\n')[0] : String(e);
    log(`warning: no System.map for the default guest (${m.systemMapUnavailable}); kernel panics are seen only as a stalled guest`);
  }
  await writeFile(join(g, MANIFEST + '.tmp'), JSON.stringify(m, null, 2) + '\n');
  await rename(join(g, MANIFEST + '.tmp'), join(g, MANIFEST));
}

// ---------------------------------------------------------------- build

async function findFirst(dir: string, re: RegExp): Promise<string | undefined> {
  try {
    return (await readdir(dir)).sort().find((n) => re.test(n));
  } catch {
    return undefined;
  }
}

/** Why the archive cannot be verified, and the ways out. */
export function unverifiedArchiveMessage(why: string): string {
  return `cannot verify the Debian ${SUITE} archive signature: ${why}. ` +
    `Install debian-archive-keyring with the ${SUITE} keys (Debian 12 has them from 2023.3+deb12u1 on: apt-get install debian-archive-keyring), ` +
    'or pass --allow-unsigned to build from an unverified archive';
}

async function build(cacheDir: string, mirror: string, progressOn: boolean, log: (s: string) => void, allowUnsigned: boolean): Promise<DefaultGuest> {
  for (const t of ['apt-get', 'apt-cache', 'dpkg-deb']) {
    if (!hasTool(t)) throw new ImageBuildError(`${t} not found on the host: building the default guest needs apt and dpkg (a Debian-based host)`);
  }
  // 1. private apt: update
  const apt = new PrivateApt(cacheDir, mirror);
  let trust: 'keyring' | 'unsigned' = 'keyring';
  // Fail closed: without a keyring that can check the archive, nothing is downloaded unless the user said so.
  const goUnsigned = (why: string): void => {
    if (!allowUnsigned) throw new ImageBuildError(unverifiedArchiveMessage(why));
    log(`warning: ${why}; --allow-unsigned: trusting ${mirror} WITHOUT signature checks`);
    trust = 'unsigned';
  };
  if (!(await hostKeyringHasTrixie()) && !(await tryUpgradeKeyring(log))) {
    if (!existsSync(KEYRING)) goUnsigned(`${KEYRING} is missing`);
  }
  await apt.setup(trust);
  log(`updating package lists for ${SUITE}/${ARCH} from ${mirror}`);
  let up = await apt.update();
  // apt-get update exits 0 even when a fetch failed; look at its messages too.
  const failed = (x: RunResult): boolean => x.code !== 0 || /^(E|Err):/m.test(x.stdout + '\n' + x.stderr);
  const sigProblem = (x: RunResult): boolean =>
    /NO_PUBKEY|is not signed|EXPKEYSIG|KEYEXPIRED|signature/i.test(x.stderr + x.stdout);
  if (failed(up) && trust === 'keyring' && sigProblem(up)) {
    if (await tryUpgradeKeyring(log)) up = await apt.update();
    if (failed(up) && sigProblem(up)) {
      goUnsigned(`apt cannot check it with ${KEYRING} (${firstErrorLine(up)})`);
      await apt.setup(trust);
      up = await apt.update();
    }
  }
  if (failed(up)) throw new ImageBuildError(`apt-get update failed: ${firstErrorLine(up)}`);

  // 2. resolve and download
  const meta = await apt.show(KERNEL_META);
  const dep = (meta['Depends'] ?? '').split(/[,|]/).map((s) => s.trim().split(/\s/)[0]).find((n) => /^linux-image-\d/.test(n));
  if (!dep) throw new ImageBuildError(`${KERNEL_META} ${meta['Version'] ?? ''} names no linux-image-<version> package`);
  const kpkg = await apt.show(dep);
  const bpkg = await apt.show(BUSYBOX_PKG);
  log(`kernel package ${dep} ${kpkg['Version']}, ${BUSYBOX_PKG} ${bpkg['Version']}`);
  const debs = await downloadDebs(apt, [dep, BUSYBOX_PKG], join(cacheDir, 'debs'), makeProgress(progressOn, log), log);

  // 3. extract into a temporary build dir
  const tmp = join(cacheDir, `.build-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });
  try {
    const x = join(tmp, 'extract');
    await mkdir(x);
    for (const [pkg, d] of debs) {
      log(`extracting ${pkg}`);
      const r = await run('dpkg-deb', ['-x', d.path, x]);
      if (r.code !== 0) throw new ImageBuildError(`dpkg-deb -x ${d.uri.filename} failed: ${firstErrorLine(r)}`);
    }
    const kname = await findFirst(join(x, 'boot'), /^vmlinu[xz]-.*riscv64$/);
    if (!kname) throw new ImageBuildError(`no /boot/vmlinux-*-riscv64 in ${dep}`);
    const version = kname.replace(/^vmlinu[xz]-/, '');
    let modSrc = join(x, 'usr/lib/modules', version);
    if (!existsSync(modSrc)) modSrc = join(x, 'lib/modules', version);
    if (!existsSync(modSrc)) throw new ImageBuildError(`no modules directory for ${version} in ${dep}`);
    const guest = join(tmp, 'guest');
    await mkdir(join(guest, 'modules'), { recursive: true });
    let kdata = await readFile(join(x, 'boot', kname));
    if (kdata[0] === 0x1f && kdata[1] === 0x8b) kdata = (await import('node:zlib')).gunzipSync(kdata);
    if (!isRiscvImage(kdata)) throw new ImageBuildError(`${kname} is not a RISC-V Linux Image (no RSC\\x05 magic at 0x38)`);
    const kernelRel = `vmlinux-${version}`;
    await writeFile(join(guest, kernelRel), kdata);
    try {
      await rename(join(x, 'boot', `config-${version}`), join(guest, `config-${version}`));
    } catch {
      /* optional */
    }

    // 4. busybox + modules -> initramfs
    let bb = join(x, 'usr/bin/busybox');
    if (!existsSync(bb)) bb = join(x, 'bin/busybox');
    if (!existsSync(bb)) throw new ImageBuildError(`no busybox binary in ${BUSYBOX_PKG}`);
    const busybox = await readFile(bb);
    const modulesRel = `modules/${version}`;
    await rename(modSrc, join(guest, modulesRel));
    if (!hasTool('xz') || !hasTool('zstd')) {
      log('note: xz or zstd missing on the host; compressed kernel modules may not unpack');
    }
    log('selecting kernel modules');
    const sel = await selectModules(join(guest, modulesRel), GUEST_MODULES).catch((e: Error) => {
      throw new ImageBuildError(`reading kernel modules failed: ${e.message}`);
    });
    if (sel.builtin.length) log(`built into the kernel: ${sel.builtin.join(', ')}`);
    if (sel.missing.length) log(`warning: modules not found: ${sel.missing.join(', ')}`);
    log(`initramfs modules: ${sel.modules.map((m) => m.name).join(', ')}`);
    const initrd = buildInitramfs({
      busybox,
      kernelVersion: version,
      modules: sel.modules,
      // every selected module, dependencies first: busybox modprobe ignores soft
      // dependencies (ext4 and jbd2 want crc32c), so name them all explicitly
      loadNames: sel.modules.map((m) => m.name),
      modulesDep: sel.modulesDep,
      modulesAlias: sel.modulesAlias,
    });
    const initrdRel = 'initramfs.cpio.gz';
    await writeFile(join(guest, initrdRel), initrd);
    await writeFile(join(guest, 'busybox'), busybox, { mode: 0o755 });
    let systemMap: ManifestFile | undefined;
    let systemMapUnavailable: string | undefined;
    try {
      systemMap = await fetchSystemMap(apt, dep, version, join(guest, kernelRel), guest, join(cacheDir, 'debs-dbg'),
        makeProgress(progressOn, log), log);
    } catch (e) {
      // Optional: without it a panic is still caught, later, as a stalled guest.
      systemMapUnavailable = e instanceof Error ? e.message.split('\n')[0] : String(e);
      log(`warning: no System.map for the default guest (${systemMapUnavailable}); kernel panics are seen only as a stalled guest`);
    }

    // 5. manifest, then move into place
    const pk = (name: string, f: Record<string, string>): GuestManifest['packages'][string] => {
      const d = debs.get(name)!;
      return { version: f['Version'] ?? '', filename: d.uri.filename, size: d.uri.size, sha256: d.uri.sha256 };
    };
    const manifest: GuestManifest = {
      format: MANIFEST_FORMAT,
      createdAt: new Date().toISOString(),
      mirror,
      suite: SUITE,
      arch: ARCH,
      kernelVersion: version,
      packages: {
        [KERNEL_META]: { version: meta['Version'] ?? '', filename: '', size: 0, sha256: '' },
        [dep]: pk(dep, kpkg),
        [BUSYBOX_PKG]: pk(BUSYBOX_PKG, bpkg),
      },
      files: {
        kernel: await describeFile(guest, kernelRel),
        initrd: await describeFile(guest, initrdRel),
        busybox: await describeFile(guest, 'busybox'),
        ...(systemMap ? { systemMap } : {}),
      },
      ...(systemMapUnavailable ? { systemMapUnavailable } : {}),
      modulesDir: modulesRel,
      initramfsModules: sel.modules.map((m) => m.path),
      builtinModules: sel.builtin,
      missingModules: sel.missing,
    };
    await writeFile(join(guest, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');

    const final = join(cacheDir, GUEST_DIR);
    const old = join(tmp, 'old');
    if (existsSync(final)) await rename(final, old);
    await rename(guest, final);
    // The packages are fully unpacked into the guest; drop the bulky leftovers.
    await rm(join(cacheDir, 'debs'), { recursive: true, force: true });
    await rm(join(apt.root, 'cache/pkgcache.bin'), { force: true });
    log(`default guest ready: kernel ${version}, initramfs ${mib(manifest.files.initrd.size)}`);
    return {
      kernel: join(final, kernelRel),
      initrd: join(final, initrdRel),
      modulesDir: join(final, modulesRel),
      version,
      systemMap: systemMap ? join(final, systemMap.path) : undefined,
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Returns the default guest's kernel, initramfs and modules, building and
 * caching them first if needed (or if `force`).
 */
export async function ensureDefaultGuest(opts: EnsureGuestOptions = {}): Promise<DefaultGuest> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  if (!opts.force) {
    const cached = await checkCachedGuest(cacheDir);
    if (cached && (cached.systemMap || (await readManifest(join(cacheDir, GUEST_DIR)))?.systemMapUnavailable)) return cached;
  }
  try {
    await mkdir(cacheDir, { recursive: true });
  } catch (e) {
    throw new ImageBuildError(`cannot create cache directory ${cacheDir}: ${(e as Error).message}`);
  }
  const release = await acquireLock(cacheDir, log);
  try {
    let mirror = opts.mirror?.trim();
    const pickMirror = (): string => {
      const m = mirror || findDebianMirror(readHostSources());
      if (!m) throw new ImageBuildError('no Debian mirror found in the host apt sources (/etc/apt/sources.list*); pass --mirror URI');
      return m.replace(/\/+$/, '');
    };
    // Someone else may have finished a build while we waited.
    if (!opts.force) {
      const cached = await checkCachedGuest(cacheDir);
      if (cached && !cached.systemMap) {
        // Built before the System.map was kept: fetch it alone.
        const man = await readManifest(join(cacheDir, GUEST_DIR));
        await addSystemMap(cacheDir, man?.mirror ?? pickMirror(), opts.progress !== false && process.stdout.isTTY === true, log);
        return (await checkCachedGuest(cacheDir)) ?? cached;
      }
      if (cached) return cached;
      if (await refreshInitramfs(cacheDir, log)) {
        const fresh = await checkCachedGuest(cacheDir);
        if (fresh) return fresh;
      }
    }
    mirror = pickMirror();
    // Leftovers of builds that were killed (we hold the lock, so none is running).
    for (const n of await readdir(cacheDir)) {
      if (n.startsWith('.build-')) await rm(join(cacheDir, n), { recursive: true, force: true });
    }
    if (!/^[a-z][a-z0-9+.-]*:/i.test(mirror)) throw new ImageBuildError(`not a URI: ${mirror}`);
    const progressOn = opts.progress !== false && process.stdout.isTTY === true;
    try {
      return await build(cacheDir, mirror, progressOn, log, opts.allowUnsigned === true);
    } catch (e) {
      if (e instanceof ImageBuildError) throw e;
      const err = e as NodeJS.ErrnoException;
      const msg = (err.message ?? String(e)).split('\n')[0];
      if (err.name === 'TypeError' && /fetch failed/i.test(msg)) {
        throw new ImageBuildError(`network error while downloading from ${mirror}: ${String((err.cause as Error)?.message ?? msg)}`);
      }
      throw new ImageBuildError(`building the default guest failed: ${msg}`);
    }
  } finally {
    await release();
  }
}

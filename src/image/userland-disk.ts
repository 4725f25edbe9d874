// The Debian userland disk: `tsvisor image build --userland` makes an ext4
// qcow2 image holding an unconfigured Debian trixie riscv64 tree with python3,
// sqlite3, xz, gzip, gawk and coreutils, for jobs run in a chroot (the
// userland benchmark, bench/userland.ts). Unlike the root disk it needs no
// emulation to build, so it takes about a minute instead of half an hour:
//
//  1. debootstrap's first stage (--foreign: download, verify, unpack the
//     required packages; nothing is run);
//  2. the packages the first stage only downloaded are unpacked with the
//     host's dpkg-deb;
//  3. what the packages' maintainer scripts would have made and the tools
//     need is added by hand (below: the awk alternative, /etc/passwd and
//     /etc/group); no package is configured;
//  4. mkfs.ext4 -d of the tree, converted to qcow2 with tsvisor's own code.
//
// The tree itself is kept next to the image: user-mode QEMU runs the same
// binaries from it on the host (qemu-riscv64 -L TREE) to cross-check outputs.
//
// Cache: <cache>/userland/debian-userland.qcow2, <cache>/userland/tree/ and
// <cache>/userland/manifest.json.

import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rename, rm, stat, symlink, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findDebianMirror, readHostSources } from './apt-sources.js';
import { buildUnlessCached } from './build-lock.js';
import { Status, convertToQcow2, hasTool, makeExt4, privileged, publishBuild, runLines, seconds, stage1, lastLines } from './debootstrap.js';
import { ARCH, SUITE, defaultCacheDir } from './default-guest.js';
import { ImageBuildError } from './errors.js';

/** Packages added to debootstrap's minbase (coreutils and gzip are in it already; named for clarity). */
export const USERLAND_PACKAGES = ['python3', 'sqlite3', 'xz-utils', 'gzip', 'gawk', 'coreutils'];
export const USERLAND_LABEL = 'tsvisor-userland';
export const USERLAND_DIR = 'userland';
export const USERLAND_IMAGE = 'debian-userland.qcow2';
export const USERLAND_TREE = 'tree';
/** File the builder writes into the tree when it is complete. */
export const USERLAND_MARKER = '/etc/tsvisor-userland';
export const DEFAULT_USERLAND_SIZE = 1024 * 1024 * 1024;
const MANIFEST = 'manifest.json';
/** Bump when the image's contents change, so cached disks are rebuilt. */
const MANIFEST_FORMAT = 2;

export interface EnsureUserlandOptions {
  /** Debian archive URI; default: the host apt's main Debian source. */
  mirror?: string;
  /** Rebuild even if a disk is cached. */
  force?: boolean;
  /** Virtual size of the disk in bytes (default 1 GiB). */
  size?: number;
  /** Default: $XDG_CACHE_HOME/tsvisor or ~/.cache/tsvisor. */
  cacheDir?: string;
  /** Status lines on one rewritten line (a terminal). Default false. */
  progress?: boolean;
  /** Status lines; default: stderr. */
  log?: (s: string) => void;
  /** Build from an archive whose signature cannot be verified (with a warning); refused by default. */
  allowUnsigned?: boolean;
}

export interface UserlandManifest {
  format: number;
  createdAt: string;
  mirror: string;
  suite: string;
  arch: string;
  size: number;
  fileSize: number;
  packages: string[];
  seconds: { download: number; unpack: number; mkfs: number; convert: number; total: number };
}

export interface UserlandDisk {
  /** The qcow2 image (use it as the backing file of an overlay: never write it). */
  path: string;
  /** The same tree on the host, for qemu-riscv64 -L. */
  tree: string;
  manifest: UserlandManifest;
  /** False when the cached disk was reused. */
  built: boolean;
}

async function readManifest(dir: string): Promise<UserlandManifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as UserlandManifest;
    return m && m.format === MANIFEST_FORMAT ? m : undefined;
  } catch {
    return undefined;
  }
}

/** The cached userland disk in cacheDir, if one was finished; undefined otherwise. */
export async function checkCachedUserland(cacheDir = defaultCacheDir()): Promise<Omit<UserlandDisk, 'built'> | undefined> {
  const dir = join(cacheDir, USERLAND_DIR);
  const manifest = await readManifest(dir);
  if (!manifest) return undefined;
  const path = join(dir, USERLAND_IMAGE);
  const tree = join(dir, USERLAND_TREE);
  try {
    if (!(await stat(path)).isFile()) return undefined;
  } catch {
    return undefined;
  }
  if (!existsSync(join(tree, USERLAND_MARKER.slice(1)))) return undefined;
  return { path, tree, manifest };
}

/**
 * Unpacks the packages the first stage downloaded but left for the second
 * (debootstrap/base lists them; debootstrap/debpaths says where each .deb is).
 */
async function unpackRest(tree: string, wrap: ReturnType<typeof privileged>, status: Status): Promise<number> {
  const base = (await readFile(join(tree, 'debootstrap', 'base'), 'utf8')).split(/\s+/).filter(Boolean);
  const paths = new Map<string, string>();
  for (const line of (await readFile(join(tree, 'debootstrap', 'debpaths'), 'utf8')).split('\n')) {
    const [pkg, path] = line.split(' ');
    if (pkg && path) paths.set(pkg, path);
  }
  let n = 0;
  for (const pkg of base) {
    const deb = paths.get(pkg);
    if (!deb) throw new ImageBuildError(`debootstrap downloaded no .deb for ${pkg}`);
    status.set(`  unpacking ${pkg}`);
    const [cmd, argv] = wrap('dpkg-deb', ['-x', join(tree, deb), tree]);
    const r = await runLines(cmd, argv, () => {});
    if (r.code !== 0) throw new ImageBuildError(`dpkg-deb -x ${pkg} failed: ${lastLines(r.out, 2).replace(/\n/g, ' | ')}`);
    n++;
  }
  status.done();
  return n;
}

async function link(target: string, at: string): Promise<void> {
  await rm(at, { force: true });
  await symlink(target, at);
}

/**
 * What the maintainer scripts of the unpacked packages would have made that
 * the job's tools need: gawk's postinst registers it as `awk` (an
 * alternative), base-passwd's postinst writes /etc/passwd and /etc/group from
 * its master copies (python's getpass/pwd, sqlite3 and ls look users up).
 * Python's byte code (py3compile in python3's postinst) is not made here: it
 * would need a riscv64 python3 run under emulation; python writes it on
 * first import instead.
 */
async function configureByHand(tree: string): Promise<void> {
  for (const p of ['usr/bin/gawk', 'usr/bin/python3', 'usr/bin/sqlite3', 'usr/bin/xz', 'usr/bin/gzip', 'usr/bin/sort', 'usr/bin/sh']) {
    if (!existsSync(join(tree, p))) throw new ImageBuildError(`the unpacked tree has no /${p}`);
  }
  await mkdir(join(tree, 'etc/alternatives'), { recursive: true });
  for (const name of ['awk', 'nawk']) {
    await link('/usr/bin/gawk', join(tree, 'etc/alternatives', name));
    await link(`/etc/alternatives/${name}`, join(tree, 'usr/bin', name));
  }
  for (const f of ['passwd', 'group']) {
    const master = join(tree, 'usr/share/base-passwd', `${f}.master`);
    if (!existsSync(join(tree, 'etc', f)) && existsSync(master)) await copyFile(master, join(tree, 'etc', f));
  }
  // debootstrap leaves /proc a symlink to the host's when it cannot mount
  // proc; a chroot needs a directory to mount it on.
  const proc = join(tree, 'proc');
  if ((await lstat(proc).catch(() => undefined))?.isSymbolicLink()) {
    await rm(proc, { force: true });
    await mkdir(proc, { mode: 0o555 });
  }
  // The downloaded packages are not needed in the image.
  const archives = join(tree, 'var/cache/apt/archives');
  for (const f of await readdir(archives).catch(() => [] as string[])) {
    if (f.endsWith('.deb')) await rm(join(archives, f), { force: true });
  }
  await writeFile(join(tree, USERLAND_MARKER.slice(1)),
    `Debian ${SUITE} ${ARCH} userland (unconfigured: unpacked by 'tsvisor image build --userland' without running any package's scripts)\n`);
}

async function build(dir: string, mirror: string, size: number, allowUnsigned: boolean, status: Status): Promise<UserlandManifest> {
  for (const t of ['debootstrap', 'dpkg-deb', 'mkfs.ext4']) {
    if (!hasTool(t)) throw new ImageBuildError(`${t} is needed to build the userland disk (apt-get install debootstrap dpkg e2fsprogs)`);
  }
  if (process.getuid?.() !== 0 && !hasTool('fakeroot')) {
    throw new ImageBuildError('building the userland disk needs root, or fakeroot when not run as root (apt-get install fakeroot)');
  }
  const t0 = Date.now();
  const work = join(dir, `work-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const wrap = privileged(work);
    const tree = join(work, 'tree');
    const raw = join(work, 'userland.ext4');

    let t = Date.now();
    const packages = await stage1(tree, mirror, USERLAND_PACKAGES, wrap, status, allowUnsigned);
    const sd = seconds(t);

    t = Date.now();
    const n = await unpackRest(tree, wrap, status);
    await configureByHand(tree);
    const su = seconds(t);
    status.line(`unpacked the ${n} packages the first stage leaves to the second, without configuring them (${su}s)`);

    t = Date.now();
    await makeExt4(tree, raw, size, USERLAND_LABEL, wrap);
    const sm = seconds(t);
    status.line(`mkfs.ext4: ${(size / 1073741824).toFixed(1)} GiB ext4 image made from the tree (${sm}s)`);

    const tmp = join(dir, `${USERLAND_IMAGE}.tmp-${process.pid}`);
    const conv = await convertToQcow2(raw, tmp, status);
    await rm(raw, { force: true });
    const { fileSize, seconds: sc } = conv;

    const manifest: UserlandManifest = {
      format: MANIFEST_FORMAT, createdAt: new Date().toISOString(), mirror, suite: SUITE, arch: ARCH,
      size: conv.size, fileSize, packages,
      seconds: { download: sd, unpack: su, mkfs: sm, convert: sc, total: seconds(t0) },
    };
    await publishBuild(dir, MANIFEST, manifest, [[tree, join(dir, USERLAND_TREE)], [tmp, join(dir, USERLAND_IMAGE)]]);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Builds the userland disk unless a finished one is cached; returns its path and tree. */
export async function ensureUserland(opts: EnsureUserlandOptions = {}): Promise<UserlandDisk> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`));
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const dir = join(cacheDir, USERLAND_DIR);
  const size = opts.size ?? DEFAULT_USERLAND_SIZE;
  if (!Number.isSafeInteger(size) || size < 512 * 1024 * 1024) {
    throw new ImageBuildError(`userland disk size ${size} is too small (at least 512 MiB)`);
  }
  return buildUnlessCached(dir, { what: 'userland disk', maxWaitSeconds: 3600, log }, opts.force === true,
    () => checkCachedUserland(cacheDir),
    async () => {
      const mirror = opts.mirror ?? findDebianMirror(readHostSources());
      if (!mirror) throw new ImageBuildError("no Debian mirror found in the host's apt sources; name one with --mirror URI");
      const status = new Status(opts.progress === true && process.stderr.isTTY === true, log);
      const manifest = await build(dir, mirror, size, opts.allowUnsigned === true, status);
      log(`userland disk built in ${manifest.seconds.total}s (download and first stage ${manifest.seconds.download}s, unpack ${manifest.seconds.unpack}s, mkfs ${manifest.seconds.mkfs}s, qcow2 ${manifest.seconds.convert}s)`);
      return { path: join(dir, USERLAND_IMAGE), tree: join(dir, USERLAND_TREE), manifest };
    });
}

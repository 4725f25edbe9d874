// The Debian root disk: `tsvisor image build --rootfs` makes a bootable ext4
// qcow2 image of a minimal Debian trixie riscv64 system.
//
//  1. debootstrap's first stage on the host (--foreign: download and unpack
//     only), from the Debian mirror the host's apt uses (or --mirror);
//  2. a small script (/tsvisor-stage2) is added to the tree, and mkfs.ext4 -d
//     turns the tree into a sparse raw ext4 image;
//  3. the second stage runs inside a tsvisor guest: the default kernel and
//     initramfs boot with root=/dev/vda init=/tsvisor-stage2, which runs
//     `debootstrap --second-stage` (configures every package with the guest's
//     own dpkg), configures the system for booting and powers off;
//  4. the used blocks are copied (e2image) and converted to qcow2 with
//     tsvisor's own qcow2 code, then moved into place atomically.
//
// Cache: <cache>/rootfs/debian.qcow2 and <cache>/rootfs/manifest.json.

import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findDebianMirror, readHostSources } from './apt-sources.js';
import { ARCH, ImageBuildError, SUITE, defaultCacheDir, ensureDefaultGuest } from './default-guest.js';
import { ROOTFS_LABEL } from './rootfs-disk.js';
import { buildUnlessCached } from './build-lock.js';
import { Status, convertToQcow2, hasTool, lastLines, makeExt4, privileged, publishBuild, runLines, seconds, stage1, toolPath } from './debootstrap.js';

export { ROOTFS_LABEL, ROOTFS_APPEND, isRootfsDisk, readExtLabel, rawToQcow2 } from './rootfs-disk.js';

export interface EnsureRootfsOptions {
  /** Debian archive URI; default: the host apt's main Debian source. */
  mirror?: string;
  /** Rebuild even if a root disk is cached. */
  force?: boolean;
  /** Virtual size of the disk in bytes (default 2 GiB). */
  size?: number;
  /** Default: $XDG_CACHE_HOME/tsvisor or ~/.cache/tsvisor. */
  cacheDir?: string;
  /** Status lines on one rewritten line (a terminal). Default false. */
  progress?: boolean;
  /** Status lines; default: stderr. */
  log?: (s: string) => void;
  /** Give up on the second stage after this long (default 3 hours). */
  stage2TimeoutMs?: number;
  /**
   * Run the second stage with the translator (tsvisor run --jit on): the
   * default since translations are really freed at a flush (they used to pile
   * up until the process ran out of memory mappings). TSVISOR_ROOTFS_JIT=off
   * runs it with the interpreter alone.
   */
  jit?: boolean;
  /** Build from an archive whose signature cannot be verified (with a warning); refused by default. */
  allowUnsigned?: boolean;
}

export interface RootfsResult {
  path: string;
  manifest: RootfsManifest;
  /** False when the cached disk was reused. */
  built: boolean;
}

export interface RootfsManifest {
  format: number;
  createdAt: string;
  mirror: string;
  suite: string;
  arch: string;
  size: number;
  fileSize: number;
  kernelVersion: string;
  packages: string[];
  seconds: { stage1: number; mkfs: number; stage2: number; convert: number; total: number };
}

/** Packages added to debootstrap's minbase: systemd as init, udev for device units (gettys wait for them). */
export const EXTRA_PACKAGES = ['systemd-sysv', 'udev'];
export const DEFAULT_ROOTFS_SIZE = 2 * 1024 * 1024 * 1024;
export const MIN_ROOTFS_SIZE = 512 * 1024 * 1024;
export const ROOTFS_DIR = 'rootfs';
export const ROOTFS_IMAGE = 'debian.qcow2';
export const STAGE2_PATH = '/tsvisor-stage2';
export const STAGE2_OK = 'TSVISOR-STAGE2-OK';
export const STAGE2_FAILED = 'TSVISOR-STAGE2-FAILED';
/** File the second stage writes into the image when it succeeded. */
export const ROOTFS_MARKER = '/etc/tsvisor-rootfs';
export const HOSTNAME = 'tsvisor';
const MANIFEST = 'manifest.json';
/** Bump when the image's contents change, so cached disks are rebuilt. */
const MANIFEST_FORMAT = 1;

/** The script the guest runs as init for debootstrap's second stage. */
export function stage2Script(): string {
  return `#!/bin/sh
# tsvisor: debootstrap's second stage, run as init (pid 1) inside a tsvisor guest
# by 'tsvisor image build --rootfs'. Powers the guest off when done.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null

finish() {
  sync
  echo "$1"
  sync
  # Read-only first, so the file system is clean even if the power-off below
  # does not happen and the builder has to stop the guest.
  mount -o remount,ro / 2>/dev/null
  echo s > /proc/sysrq-trigger
  echo u > /proc/sysrq-trigger
  sleep 1
  # The kernel's own power-off (systemctl's 'poweroff -ff' was seen to hang here).
  echo o > /proc/sysrq-trigger
  poweroff -ff 2>/dev/null
  while :; do sleep 60; done
}

echo "tsvisor-stage2: running debootstrap --second-stage"
start=$(date +%s)
if ! /debootstrap/debootstrap --second-stage; then
  echo "tsvisor-stage2: debootstrap failed; the end of its log:"
  tail -n 40 /debootstrap/debootstrap.log 2>/dev/null
  finish ${STAGE2_FAILED}
fi
echo "tsvisor-stage2: second stage done in $(( $(date +%s) - start ))s; configuring the system"

set -e
echo ${HOSTNAME} > /etc/hostname
cat > /etc/hosts <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	${HOSTNAME}
::1		localhost ip6-localhost ip6-loopback
HOSTS
# Root is the first virtio disk; the kernel command line mounts it (root=/dev/vda rw).
cat > /etc/fstab <<'FSTAB'
# <file system>	<mount point>	<type>	<options>		<dump>	<pass>
/dev/vda	/		ext4	rw,errors=remount-ro	0	0
FSTAB
# A development VM: root logs in on the console without a password.
passwd -d root >/dev/null
# A machine id now, so the first boot is not a "first boot" (no prompts).
systemd-machine-id-setup >/dev/null 2>&1 || true
systemctl mask systemd-firstboot.service >/dev/null 2>&1 || true
# Login prompts on the serial console and on hvc0 (virtio-console).
systemctl enable serial-getty@ttyS0.service serial-getty@hvc0.service >/dev/null 2>&1 || true
apt-get clean >/dev/null 2>&1 || true
rm -f /var/log/bootstrap.log
set +e

echo "root file system built by 'tsvisor image build --rootfs' ($(date -u +%Y-%m-%dT%H:%M:%SZ))" > ${ROOTFS_MARKER}
rm -f ${STAGE2_PATH}
finish ${STAGE2_OK}
`;
}

// ---------------------------------------------------------------- cache

async function readManifest(dir: string): Promise<RootfsManifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as RootfsManifest;
    return m && m.format === MANIFEST_FORMAT ? m : undefined;
  } catch {
    return undefined;
  }
}

/** The cached root disk in cacheDir, if one was finished; undefined otherwise. */
export async function checkCachedRootfs(cacheDir = defaultCacheDir()): Promise<{ path: string; manifest: RootfsManifest } | undefined> {
  const dir = join(cacheDir, ROOTFS_DIR);
  const m = await readManifest(dir);
  if (!m) return undefined;
  const path = join(dir, ROOTFS_IMAGE);
  try {
    // The disk may have been booted (and so written) since: only its presence is checked.
    if (!(await stat(path)).isFile()) return undefined;
  } catch {
    return undefined;
  }
  return { path, manifest: m };
}

// ---------------------------------------------------------------- build steps
/** The tsvisor CLI (bin/tsvisor.js), found from this module's location in dist/src/image/. */
function tsvisorBin(): string {
  return fileURLToPath(new URL('../../../bin/tsvisor.js', import.meta.url));
}

const KERNEL_LINE = /^\[\s*\d+\.\d+\]/;

async function stage2(raw: string, kernel: string, initrd: string, status: Status, timeoutMs: number, jit: boolean): Promise<{ stopped: boolean }> {
  const append = `console=ttyS0 root=/dev/vda rw init=${STAGE2_PATH}`;
  status.line(`stage 2: booting a tsvisor guest (--jit ${jit ? 'on' : 'off'}) to run debootstrap --second-stage (append "${append}")`);
  let configured = 0;
  let ok = false;
  let failed = false;
  const r = await runLines(process.execPath, [
    tsvisorBin(), 'run', '--kernel', kernel, '--initrd', initrd, '--disk', `${raw},format=raw`,
    '--mem', '1G', '--jit', jit ? 'on' : 'off', '--append', append,
  ], (l) => {
    // eslint-disable-next-line no-control-regex
    const line = l.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').trimEnd();
    if (!line) return;
    if (line.includes(STAGE2_OK)) ok = true;
    if (line.includes(STAGE2_FAILED)) failed = true;
    if (KERNEL_LINE.test(line)) {
      status.set(`  guest kernel: ${line.replace(KERNEL_LINE, '').trim()}`);
      return;
    }
    if (/^I: Configuring /.test(line)) configured++;
    status.line(`  guest| ${line}`);
  }, { timeoutMs, stopWhen: new RegExp(`^${STAGE2_OK}$`), graceMs: 120_000 });
  status.done();
  if (failed || !ok) {
    const fatal = r.out.split('\n').find((l) => /FATAL ERROR|out of memory/.test(l));
    const why = fatal ? `the VMM died: ${fatal.trim()}` : lastLines(r.out, 4).replace(/\n/g, ' | ');
    throw new ImageBuildError(`the second stage failed in the guest (exit status ${r.code}${ok ? '' : ', no success marker'}): ${why}`);
  }
  // The script syncs before it prints the marker; a guest that then failed to
  // power off was stopped, and the file system check below decides.
  if (r.code !== 0) status.line(`stage 2: the guest did not power off by itself (tsvisor run status ${r.code}); stopped it`);
  status.line(`stage 2: done (${configured} packages configured)`);
  return { stopped: r.code !== 0 };
}

/**
 * e2fsck -fn: the guest must have left a clean file system. Then the marker must be there.
 * A guest that had to be stopped after its success marker gets the check a boot
 * would give it first (e2fsck -fy: journal replay, repairs; 1 = errors corrected).
 */
async function checkExt4(raw: string, stopped: boolean, status: Status): Promise<void> {
  if (stopped && hasTool('e2fsck')) {
    const fix = await runLines(toolPath('e2fsck'), ['-fy', raw], () => {});
    status.line(`stage 2: e2fsck -fy after the stop: status ${fix.code}`);
    if (fix.code > 1) throw new ImageBuildError(`e2fsck could not repair the root file system after the second stage: ${lastLines(fix.out, 3).replace(/\n/g, ' | ')}`);
  }
  if (hasTool('e2fsck')) {
    const r = await runLines(toolPath('e2fsck'), ['-fn', raw], () => {});
    if (r.code !== 0) throw new ImageBuildError(`e2fsck found problems in the root file system after the second stage: ${lastLines(r.out, 3).replace(/\n/g, ' | ')}`);
  }
  if (hasTool('debugfs')) {
    const r = await runLines(toolPath('debugfs'), ['-R', `stat ${ROOTFS_MARKER}`, raw], () => {});
    if (r.code !== 0 || /File not found/.test(r.out)) throw new ImageBuildError(`the second stage left no ${ROOTFS_MARKER} in the image`);
  }
}

async function build(cacheDir: string, opts: Required<Pick<EnsureRootfsOptions, 'size' | 'stage2TimeoutMs' | 'jit' | 'allowUnsigned'>> & { mirror: string },
  status: Status, dir: string): Promise<RootfsManifest> {
  for (const t of ['debootstrap', 'mkfs.ext4']) {
    if (!hasTool(t)) throw new ImageBuildError(`${t} is needed to build the root disk (apt-get install debootstrap e2fsprogs)`);
  }
  if (process.getuid?.() !== 0 && !hasTool('fakeroot')) {
    throw new ImageBuildError('building the root disk needs root, or fakeroot when not run as root (apt-get install fakeroot)');
  }
  const t0 = Date.now();
  const guest = await ensureDefaultGuest({ mirror: opts.mirror, cacheDir, progress: false, log: (s) => status.line(s), allowUnsigned: opts.allowUnsigned });

  const work = join(dir, `work-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const wrap = privileged(work);
    const tree = join(work, 'tree');
    const raw = join(work, 'root.ext4');

    let t = Date.now();
    const packages = await stage1(tree, opts.mirror, EXTRA_PACKAGES, wrap, status, opts.allowUnsigned);
    const s1 = seconds(t);

    t = Date.now();
    await writeFile(join(tree, STAGE2_PATH.slice(1)), stage2Script());
    await chmod(join(tree, STAGE2_PATH.slice(1)), 0o755);
    await makeExt4(tree, raw, opts.size, ROOTFS_LABEL, wrap);
    await rm(tree, { recursive: true, force: true }).catch(() => undefined);
    const sm = seconds(t);
    status.line(`mkfs.ext4: ${(opts.size / 1073741824).toFixed(1)} GiB ext4 image made from the tree (${sm}s)`);

    t = Date.now();
    const run2 = await stage2(raw, guest.kernel, guest.initrd, status, opts.stage2TimeoutMs, opts.jit);
    await checkExt4(raw, run2.stopped, status);
    const s2 = seconds(t);
    status.line(`stage 2 took ${s2}s`);

    t = Date.now();
    // e2image -ra copies only the blocks the file system uses (blocks freed in
    // the guest still hold old data in the raw file; they become holes here).
    let src = raw;
    if (hasTool('e2image')) {
      const compact = join(work, 'compact.ext4');
      const r = await runLines(toolPath('e2image'), ['-ra', raw, compact], () => {});
      if (r.code === 0) {
        src = compact;
        await rm(raw, { force: true });
      }
    }
    const tmp = join(dir, `${ROOTFS_IMAGE}.tmp-${process.pid}`);
    const conv = await convertToQcow2(src, tmp, status);
    const fileSize = conv.fileSize;
    const sc = seconds(t);

    const manifest: RootfsManifest = {
      format: MANIFEST_FORMAT,
      createdAt: new Date().toISOString(),
      mirror: opts.mirror,
      suite: SUITE,
      arch: ARCH,
      size: conv.size,
      fileSize,
      kernelVersion: guest.version,
      packages,
      seconds: { stage1: s1, mkfs: sm, stage2: s2, convert: sc, total: seconds(t0) },
    };
    await publishBuild(dir, MANIFEST, manifest, [[tmp, join(dir, ROOTFS_IMAGE)]]);
    return manifest;
  } finally {
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Builds the Debian root disk unless a finished one is cached; returns its path. */
export async function ensureRootfs(opts: EnsureRootfsOptions = {}): Promise<RootfsResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`));
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const dir = join(cacheDir, ROOTFS_DIR);
  const size = opts.size ?? DEFAULT_ROOTFS_SIZE;
  if (!Number.isSafeInteger(size) || size < MIN_ROOTFS_SIZE) {
    throw new ImageBuildError(`root disk size ${size} is too small (at least ${MIN_ROOTFS_SIZE / 1048576} MiB)`);
  }
  return buildUnlessCached(dir, { what: 'root disk', maxWaitSeconds: 4 * 3600, log }, opts.force === true,
    () => checkCachedRootfs(cacheDir),
    async () => {
      const mirror = opts.mirror ?? findDebianMirror(readHostSources());
      if (!mirror) {
        throw new ImageBuildError("no Debian mirror found in the host's apt sources; name one with --mirror URI");
      }
      const status = new Status(opts.progress === true && process.stderr.isTTY === true, log);
      const manifest = await build(cacheDir, {
        mirror, size, stage2TimeoutMs: opts.stage2TimeoutMs ?? 3 * 3600_000, jit: opts.jit ?? process.env.TSVISOR_ROOTFS_JIT !== 'off', allowUnsigned: opts.allowUnsigned === true,
      }, status, dir);
      log(`root disk built in ${manifest.seconds.total}s (stage 1 ${manifest.seconds.stage1}s, mkfs ${manifest.seconds.mkfs}s, stage 2 ${manifest.seconds.stage2}s, qcow2 ${manifest.seconds.convert}s)`);
      return { path: join(dir, ROOTFS_IMAGE), manifest };
    });
}

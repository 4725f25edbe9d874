// tsvisor's command line: `tsvisor run`, `tsvisor image build`, help and version.
// Every mistake a user can make ends in one line `tsvisor: <message>` on stderr.

import { performance } from 'node:perf_hooks';
import { closeSync, openSync, readFileSync, readSync, statSync, accessSync, constants as fsConstants } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { parseMemSize, parseSize, SizeError } from '../common/size.js';
import { parseNetSpec, type NicSpec } from '../net/nic-spec.js';
import { parseUserNetOptions } from '../net/user/options.js';
import { UsageError, UserError, parseOptions, type MainIo } from './args.js';
import { parseDiskSpec, MAX_DISKS, type DiskSpec } from './disk-spec.js';
import { classifyExecutable } from '../machine/loader.js';
import { parseGdbAddress } from './gdb-listen.js';

export { UsageError, UserError, parseOptions, type MainIo } from './args.js';
export { parseDiskSpec, MAX_DISKS, type DiskSpec } from './disk-spec.js';
export { classifyExecutable, type ExecutableKind } from '../machine/loader.js';

export const DEFAULT_APPEND = 'console=ttyS0 earlycon=sbi';
export const DEFAULT_MEM = '512M';

const MAIN_HELP = `Usage: tsvisor <command> [options]

A virtual machine monitor for 64-bit RISC-V guests.

Commands:
  run            boot a VM on this terminal (see 'tsvisor run --help')
  image build    build the default guest (Debian kernel + busybox initramfs)
  image create   create a blank raw/qcow2 disk or a qcow2 overlay
  image info     show a disk's format, size, allocation and backing chain
  clone SNAP     start clones of a snapshot in the background (--count N)
  migrate VM     live-migrate a running VM to another daemon (--to URL)
  serve          run the daemon that owns this host's VMs (REST API)
  fleet          hosts sharing an etcd as one pool: hosts, vms, create, drain, undrain, events
  create, start, pause, resume, stop, reboot, kill, rm, ls, inspect, console, logs, stats,
  snapshot, snapshots, rm-snapshot, gdb
                 manage VMs and snapshots through the daemon (see 'tsvisor help create')
  help [cmd]     show help for a command

Options:
  -h, --help     show this help
  --version      print the version
`;

const RUN_HELP = `Usage: tsvisor run [options]

Boot a RISC-V VM with its console on this terminal.
Without --kernel, the default Debian guest is used (built on first use).

Options:
  --kernel FILE      guest kernel: a RISC-V Linux Image or ELF64 executable
  --initrd FILE      initial ramdisk
  --append STRING    kernel command line (default: "${DEFAULT_APPEND}")
  --mem SIZE         guest RAM, 16M..3584M (default: ${DEFAULT_MEM}); e.g. 512M, 1G
  --bios FILE        run this M-mode firmware (e.g. OpenSBI fw_dynamic.bin)
  --disk PATH[,format=raw|qcow2][,readonly=on][,serial=S]
       [,bps=N][,iops=N][,bps_burst=N][,iops_burst=N]
                     attach a virtio-blk disk (repeatable; the first is /dev/vda);
                     the format is read from the file when not given (a raw guess
                     refuses guest writes that would make it look like qcow2);
                     the disk is locked against other VMs; ",," in PATH is a comma;
                     bps/iops limit bytes (e.g. 10M) and requests per second,
                     the bursts are one-time extras on top
  --balloon          attach a virtio-balloon device (target set by the host)
  --deterministic    guest time follows the instruction count (reproducible runs)
  --smp N            N harts (virtual CPUs), 1 to 8 (default 1) (docs/smp.md)
  --hart-threads on|off
                     with --smp N > 1: each hart on a host thread of its own, so
                     the harts run in parallel (default: on; off: they take turns
                     on one thread, as they always do with --deterministic, --gdb
                     and --bios)
  --jit on|off       translate hot guest code to WebAssembly (default: on)
  --jit-cache on|off keep this boot's translations (about 20 MiB for the default
                     guest) and put them back in the next boot of the same guest,
                     after checking the guest code they came from byte for byte
                     (default: off, or TSVISOR_JIT_CACHE=on|off; one hart only;
                     TSVISOR_JIT_CACHE_DIR moves it from the cache directory's jit/)
  --rng on|off       virtio-rng entropy device fed by the host CSPRNG (default: off)
  --net SPEC         a virtio-net NIC (repeatable; the first is eth0):
                       user[,hostfwd=tcp:127.0.0.1:8080-:80][,allow=CIDR...]
                           [,guestfwd=tcp:10.0.2.100:80-127.0.0.1:8080][,host-loopback=on]
                                       user-mode NAT, no privileges needed; the
                                       host itself is reachable only through
                                       guestfwd, or host-loopback=on (10.0.2.2
                                       is then the host's 127.0.0.1)
                       switch=NAME     a virtual switch shared with other VMs
                       tap,ifname=IF   an existing TAP device (bridged)
                       none            no NIC
                     each takes mac=52:54:00:xx:xx:xx (default: derived from --name);
                     default: one user NIC (none with --deterministic);
                     tx_bps=, rx_bps= (bytes/s, e.g. 10M), tx_pps=, rx_pps= (frames/s)
                     limit a NIC with token buckets
  --name NAME        the VM's name (default: its first disk's path)
  --system-map FILE  the kernel's System.map: its panic() is watched, and a
                     kernel panic ends the VM (status 1, "kernel panic");
                     default: System.map-VERSION or System.map next to the
                     kernel; "none" turns the watch off
  --stall-timeout SECS  fail a guest that runs this long without taking an
                     interrupt or idling (a hang; 0 = off; default 60 when
                     the kernel's panic() cannot be watched, else off)
  --stats            print execution statistics at exit (and on SIGUSR1)
  --mirror URI       Debian mirror for building the default guest
  --restore DIR      restore the snapshot in DIR instead of booting (the machine,
                     disks and kernel are the snapshot's; --net, --jit, --stats
                     and --name may be given)
  --clone            with --restore: start a clone of the snapshot (a new VM
                     generation ID so the guest reseeds its RNG, a link blip on
                     each NIC, and a qcow2 overlay over each writable disk so
                     the snapshot's disks are never written)
  --clone-dir DIR    where --clone puts its disk overlays (default: a new
                     temporary directory, printed at start)
  --snapshot-dir DIR where C-a s (or SIGUSR2) writes a snapshot (a new or empty
                     directory; disks are flushed and must not change afterwards)
  --snapshot-at N    with --deterministic: write the snapshot to --snapshot-dir
                     when the guest has retired exactly N instructions
  --input-script FILE  console input at exact instruction counts: a JSON array
                     of {"instret": N, "data": "text"} (reproducible sessions)
  --gdb tcp:HOST:PORT  a GDB remote stub on this address (e.g. tcp:127.0.0.1:1234;
                     attach with gdb-multiarch: target remote HOST:PORT)
  --gdb-wait         with --gdb: hold the guest before its first instruction
                     until a debugger attaches and continues
  --gdb-checkpoint-every N  with --gdb --deterministic: keep a checkpoint every
                     N instructions (a multiple of 2000000; default 10000000;
                     0 = no reverse execution) for reverse-stepi/-continue
  -h, --help         show this help

Console: C-a x quits, C-a s takes a snapshot (with --snapshot-dir), C-a h shows
the escape keys, C-a C-a sends C-a.
Exit status: the guest's (0 after poweroff); 1 after a kernel panic or a hang.
`;

const IMAGE_HELP = `Usage: tsvisor image build [options]
       tsvisor image build --rootfs [--size SIZE] [options]
       tsvisor image build --userland [--size SIZE] [options]
       tsvisor image create [options] PATH   (see 'tsvisor image create --help')
       tsvisor image info PATH

Build (or check) the default guest from Debian riscv64 packages and print
the paths of its kernel and initrd. Results are cached.

Options:
  --mirror URI   Debian mirror to download from (default: the host apt's)
  --force        rebuild even if a cached image exists
  --rootfs       build a Debian trixie root disk (ext4 in qcow2, systemd) and
                 print its path; boot it with 'tsvisor run --disk PATH'
                 (see docs/rootfs.md; needs debootstrap and e2fsprogs)
  --userland     build a disk of unconfigured Debian trixie userland (python3,
                 sqlite3, xz, gzip, gawk, coreutils; ext4 in qcow2, for chroot
                 jobs such as 'npm run bench:userland') and print its path;
                 no emulation needed (needs debootstrap, dpkg-deb, e2fsprogs)
  --size SIZE    virtual size of the root disk (default: 2G; --userland: 1G)
  --allow-unsigned  build even when the archive's signature cannot be
                 verified with the host keyring (warns; refused otherwise)
  -h, --help     show this help
`;

/**
 * Run the command line. Never throws: returns the exit status.
 */
export async function main(argv: string[], io: MainIo = process): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (e) {
    return reportError(e, io);
  }
}

function reportError(e: unknown, io: MainIo): number {
  if (e instanceof UserError) {
    io.stderr.write(`tsvisor: ${oneLine(e.message)}\n`);
    return e.exitCode;
  }
  if (e instanceof SizeError) {
    io.stderr.write(`tsvisor: ${oneLine(e.message)}\n`);
    return 2;
  }
  if (e instanceof Error && e.name === 'ImageBuildError') {
    io.stderr.write(`tsvisor: ${oneLine(e.message)}\n`);
    return 1;
  }
  const msg = e instanceof Error ? e.message : String(e);
  io.stderr.write(`tsvisor: internal error: ${oneLine(msg)}\n`);
  if (process.env.TSVISOR_DEBUG === '1' && e instanceof Error && e.stack) {
    io.stderr.write(`${e.stack}\n`);
  }
  return 1;
}

function oneLine(s: string): string {
  const line = s.split('\n').map((x) => x.trim()).filter(Boolean).join(' ');
  return line || 'unknown error';
}

async function dispatch(argv: string[], io: MainIo): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
      io.stderr.write(MAIN_HELP);
      return 2;
    case 'help':
    case '--help':
    case '-h':
      return help(rest[0], io);
    case '--version':
    case '-V':
    case 'version':
      io.stdout.write(`tsvisor ${readVersion()}\n`);
      return 0;
    case 'run':
      return runCommand(rest, io);
    case 'image':
      return imageCommand(rest, io);
    case 'serve':
      return (await import('./serve.js')).serveCommand(rest, io);
    case 'clone':
      return (await import('./clone-cmd.js')).cloneCommand(rest, io);
    case 'migrate':
      return (await import('./migrate-cmd.js')).migrateCommand(rest, io);
    case 'fleet':
      return (await import('./fleet-cmd.js')).fleetCommand(rest, io);
    case 'create': case 'start': case 'pause': case 'resume': case 'stop': case 'reboot': case 'kill':
    case 'rm': case 'ls': case 'inspect': case 'console': case 'logs': case 'stats': case 'snapshot':
    case 'snapshots': case 'rm-snapshot': case 'gdb':
      return (await import('./client.js')).clientCommand(cmd, rest, io);
    default:
      if (cmd.startsWith('-')) throw new UsageError(`unknown option '${cmd}' (try 'tsvisor --help')`);
      throw new UsageError(`unknown command '${cmd}' (try 'tsvisor --help')`);
  }
}

async function help(topic: string | undefined, io: MainIo): Promise<number> {
  switch (topic) {
    case undefined:
      io.stdout.write(MAIN_HELP);
      return 0;
    case 'run':
      io.stdout.write(RUN_HELP);
      return 0;
    case 'image':
      io.stdout.write(IMAGE_HELP);
      return 0;
    case 'serve':
      io.stdout.write((await import('./serve.js')).SERVE_HELP);
      return 0;
    case 'clone':
      io.stdout.write((await import('./clone-cmd.js')).CLONE_HELP);
      return 0;
    case 'fleet':
      io.stdout.write((await import('./fleet-cmd.js')).FLEET_HELP);
      return 0;
    default: {
      const client = await import('./client.js');
      if (client.CLIENT_COMMANDS.includes(topic)) {
        io.stdout.write(client.CLIENT_HELP);
        return 0;
      }
      throw new UsageError(`no help for unknown command '${topic}'`);
    }
  }
}

function readVersion(): string {
  // dist/src/cli/main.js -> repo root; src/cli/main.ts when run from source.
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tsvisor' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
}

// ---- tsvisor image build ----

async function imageCommand(args: string[], io: MainIo): Promise<number> {
  if (args[0] === 'create' || args[0] === 'info') {
    const cmds = await import('./image-cmds.js');
    return args[0] === 'create' ? cmds.imageCreate(args.slice(1), io) : cmds.imageInfo(args.slice(1), io);
  }
  const { values, positionals } = parseOptions(
    'tsvisor image',
    args,
    {
      mirror: { type: 'string' },
      force: { type: 'boolean' },
      rootfs: { type: 'boolean' },
      userland: { type: 'boolean' },
      size: { type: 'string' },
      'allow-unsigned': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help) {
    io.stdout.write(IMAGE_HELP);
    return 0;
  }
  const [sub, ...extra] = positionals;
  if (sub === undefined) throw new UsageError("'tsvisor image' needs a subcommand: build (try 'tsvisor image --help')");
  if (sub !== 'build') throw new UsageError(`unknown image subcommand '${sub}' (try 'tsvisor image --help')`);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}' for 'tsvisor image build'`);
  const mirror = values.mirror === undefined ? undefined : checkMirror(values.mirror);
  const allowUnsigned = values['allow-unsigned'] === true;
  if (values.rootfs === true && values.userland === true) throw new UsageError('--rootfs and --userland build different disks: give one');
  if (values.rootfs === true) return buildDebianDisk(io, 'rootfs', { mirror, force: values.force === true, size: values.size, allowUnsigned });
  if (values.userland === true) return buildDebianDisk(io, 'userland', { mirror, force: values.force === true, size: values.size, allowUnsigned });
  if (values.size !== undefined) throw new UsageError('--size applies to --rootfs and --userland only');
  const guest = await buildDefaultGuest(io, { mirror, force: values.force === true, allowUnsigned });
  io.stdout.write(`kernel:  ${guest.kernel}\ninitrd:  ${guest.initrd}\nmodules: ${guest.modulesDir}\nversion: ${guest.version}\n`);
  return 0;
}

function checkMirror(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new UsageError(`invalid --mirror '${uri}': expected an absolute URI (http://, https:// or file://)`);
  }
  if (!['http:', 'https:', 'file:'].includes(url.protocol)) {
    throw new UsageError(`invalid --mirror '${uri}': expected an http://, https:// or file:// URI`);
  }
  return uri;
}

/** --size of the disk builders: 512M to 16T. */
function diskBuildSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const s = parseSize(text);
  if (s === null || !Number.isSafeInteger(s) || s < 512 * 1024 * 1024 || s > 2 ** 44) {
    throw new UsageError(`invalid --size '${text}': expected a size from 512M to 16T, like 2G`);
  }
  return s;
}

/**
 * `tsvisor image build --rootfs` (the Debian root disk: src/image/rootfs.ts,
 * docs/rootfs.md) and `--userland` (the unconfigured Debian userland disk:
 * src/image/userland-disk.ts): build unless cached, print the image's path.
 */
async function buildDebianDisk(io: MainIo, kind: 'rootfs' | 'userland', opts: { mirror?: string; force: boolean; size?: string; allowUnsigned: boolean }): Promise<number> {
  const size = diskBuildSize(opts.size);
  const ensure = kind === 'rootfs' ? (await import('../image/rootfs.js')).ensureRootfs : (await import('../image/userland-disk.js')).ensureUserland;
  const r = await ensure({
    mirror: opts.mirror,
    force: opts.force,
    size,
    allowUnsigned: opts.allowUnsigned,
    progress: io.stderr.isTTY === true,
    log: (s: string) => io.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  });
  io.stdout.write(`${r.path}\n`);
  return 0;
}

/** What the image builder hands back (src/image/default-guest.ts). */
interface DefaultGuest {
  kernel: string;
  initrd: string;
  modulesDir: string;
  version: string;
}

async function buildDefaultGuest(io: MainIo, opts: { mirror?: string; force?: boolean; allowUnsigned?: boolean }): Promise<DefaultGuest> {
  // Loaded on demand: commands that name their own kernel never need the image builder.
  const { ensureDefaultGuest } = await import('../image/default-guest.js');
  return ensureDefaultGuest({
    mirror: opts.mirror,
    force: opts.force,
    allowUnsigned: opts.allowUnsigned,
    progress: io.stderr.isTTY === true,
    log: (s: string) => io.stderr.write(s.endsWith('\n') ? s : `${s}\n`),
  });
}

// ---- tsvisor run ----

/** What `tsvisor run` was asked for, validated (paths not yet resolved for the default guest). */
export interface RunOptions {
  kernel?: string;
  initrd?: string;
  append: string;
  /** Whether --append was given (without it, a root disk as the first --disk adds root=/dev/vda rw). */
  appendGiven?: boolean;
  memMiB: number;
  bios?: string;
  deterministic: boolean;
  /** --smp: harts, 1..8. */
  cpus: number;
  /** --hart-threads: each hart on a host thread of its own. */
  hartThreads: boolean;
  mirror?: string;
  disks: DiskSpec[];
  jit: boolean;
  /** --jit-cache: use and update the translation cache kept between boots (undefined: TSVISOR_JIT_CACHE decides). */
  jitCache?: boolean;
  rng: boolean;
  stats: boolean;
  /** NICs from --net, eth0 first; undefined = the default (see defaultNics). */
  nics?: NicSpec[];
  /** The VM's name (--name): derives stable MAC addresses. */
  name?: string;
  /** Attach virtio-balloon (--balloon). */
  balloon?: boolean;
  /** --system-map FILE, or 'none'; default: a System.map next to the kernel. */
  systemMap?: string;
  /** --stall-timeout in ms (0 = off). */
  stallTimeoutMs?: number;
  /** The --net texts as given (recorded in snapshots). */
  netTexts?: string[];
  /** Restore this snapshot directory instead of booting. */
  restore?: string;
  /** With restore: start a clone (new generation ID, disk overlays in cloneDir). */
  clone?: boolean;
  cloneDir?: string;
  /** Where Ctrl-A S and SIGUSR2 (and --snapshot-at) write a snapshot. */
  snapshotDir?: string;
  snapshotAt?: number;
  /** JSON file of console input keyed to instruction counts. */
  inputScript?: string;
  /** --gdb address, --gdb-wait and --gdb-checkpoint-every. */
  gdb?: { host: string; port: number; wait: boolean; checkpointEvery?: number };
}

/**
 * Without --net, a VM gets one NIC on user-mode networking, as with QEMU. Deterministic
 * runs get none: traffic from the host would make them depend on host timing.
 */
export function defaultNics(opts: Pick<RunOptions, 'deterministic'>): NicSpec[] {
  return opts.deterministic ? [] : [{ mode: 'user', params: [] }];
}

/** --hart-threads when not given (docs/smp.md). */
const DEFAULT_HART_THREADS = 'on';

/** Largest number of NICs. */
export const MAX_NICS = 4;

/** Parse and check `tsvisor run` arguments that need no file system. */
export function parseRunArgs(args: string[]): RunOptions | 'help' {
  const { values } = parseOptions('tsvisor run', args, {
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    append: { type: 'string' },
    mem: { type: 'string' },
    bios: { type: 'string' },
    deterministic: { type: 'boolean' },
    smp: { type: 'string' },
    'hart-threads': { type: 'string' },
    mirror: { type: 'string' },
    disk: { type: 'string', multiple: true },
    jit: { type: 'string' },
    'jit-cache': { type: 'string' },
    rng: { type: 'string' },
    stats: { type: 'boolean' },
    net: { type: 'string', multiple: true },
    name: { type: 'string' },
    balloon: { type: 'boolean' },
    'system-map': { type: 'string' },
    'stall-timeout': { type: 'string' },
    restore: { type: 'string' },
    clone: { type: 'boolean' },
    'clone-dir': { type: 'string' },
    'snapshot-dir': { type: 'string' },
    'snapshot-at': { type: 'string' },
    'input-script': { type: 'string' },
    gdb: { type: 'string' },
    'gdb-wait': { type: 'boolean' },
    'gdb-checkpoint-every': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  let gdb: RunOptions['gdb'];
  if (values.gdb !== undefined) {
    const addr = parseGdbAddress(values.gdb);
    if (!addr) throw new UsageError(`invalid --gdb '${values.gdb}': expected tcp:HOST:PORT, like tcp:127.0.0.1:1234`);
    let checkpointEvery: number | undefined;
    const every = values['gdb-checkpoint-every'];
    if (every !== undefined) {
      checkpointEvery = /^\d+$/.test(every) ? Number(every) : NaN;
      if (!Number.isSafeInteger(checkpointEvery) || checkpointEvery % 2_000_000 !== 0) {
        throw new UsageError(`invalid --gdb-checkpoint-every '${every}': expected a multiple of 2000000 (0 = none)`);
      }
    }
    gdb = { ...addr, wait: values['gdb-wait'] === true, checkpointEvery };
  } else if (values['gdb-wait'] || values['gdb-checkpoint-every'] !== undefined) {
    throw new UsageError(`--${values['gdb-wait'] ? 'gdb-wait' : 'gdb-checkpoint-every'} needs --gdb tcp:HOST:PORT`);
  }
  if (values['system-map'] === '') throw new UsageError('--system-map needs a file name (or none)');
  let stallTimeoutMs: number | undefined;
  if (values['stall-timeout'] !== undefined) {
    const t = values['stall-timeout'];
    const secs = /^\d+$/.test(t) ? Number(t) : NaN;
    if (!Number.isSafeInteger(secs) || secs > 86_400) throw new UsageError(`invalid --stall-timeout '${t}': expected whole seconds, 0 to 86400 (0 = off)`);
    stallTimeoutMs = secs * 1000;
  }
  if (values.restore !== undefined) {
    if (values.restore === '') throw new UsageError('--restore needs a directory');
    // The machine comes from the snapshot: options that would describe another one are mistakes.
    for (const k of ['kernel', 'initrd', 'append', 'mem', 'bios', 'disk', 'balloon', 'rng', 'deterministic', 'mirror', 'smp'] as const) {
      if (values[k] !== undefined) throw new UsageError(`--${k} cannot be used with --restore (the snapshot has its own)`);
    }
  }
  if (values.clone && values.restore === undefined) throw new UsageError('--clone needs --restore DIR (the snapshot to clone)');
  if (values['clone-dir'] !== undefined) {
    if (!values.clone) throw new UsageError('--clone-dir needs --clone');
    if (values['clone-dir'] === '') throw new UsageError('--clone-dir needs a directory');
  }
  if (values['snapshot-dir'] === '') throw new UsageError('--snapshot-dir needs a directory');
  let snapshotAt: number | undefined;
  if (values['snapshot-at'] !== undefined) {
    if (!/^\d+$/.test(values['snapshot-at']) || !Number.isSafeInteger(Number(values['snapshot-at']))) {
      throw new UsageError(`bad --snapshot-at '${values['snapshot-at']}' (an instruction count)`);
    }
    if (values['snapshot-dir'] === undefined) throw new UsageError('--snapshot-at needs --snapshot-dir');
    if (values.deterministic !== true && values.restore === undefined) throw new UsageError('--snapshot-at needs --deterministic');
    snapshotAt = Number(values['snapshot-at']);
  }
  const disks = (values.disk ?? []).map(parseDiskSpec);
  let nics: NicSpec[] | undefined;
  if (values.net !== undefined) {
    nics = [];
    for (const text of values.net) {
      const r = parseNetSpec(text);
      if (!r.ok) throw new UsageError(r.error);
      if (r.spec?.mode === 'user') {
        // User-networking options are checked here too, so a mistake is a usage error (status 2) like the others.
        const u = parseUserNetOptions(r.spec.params);
        if (!u.ok) throw new UsageError(u.error);
      }
      if (r.spec) nics.push(r.spec);
      else if (values.net.length > 1) throw new UsageError('--net none cannot be combined with other --net options');
    }
    if (nics.length > MAX_NICS) throw new UsageError(`too many NICs: ${nics.length} (at most ${MAX_NICS})`);
  }
  if (values.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(values.name)) {
    throw new UsageError(`invalid --name '${values.name}': letters, digits, '_', '.', '-' (at most 63)`);
  }
  if (disks.length > MAX_DISKS) throw new UsageError(`too many disks: ${disks.length} (at most ${MAX_DISKS})`);
  let memMiB: number;
  try {
    memMiB = parseMemSize(values.mem ?? DEFAULT_MEM);
  } catch (e) {
    if (e instanceof SizeError) throw new UsageError(e.message);
    throw e;
  }
  for (const opt of ['kernel', 'initrd', 'bios'] as const) {
    if (values[opt] === '') throw new UsageError(`--${opt} needs a file name`);
  }
  const smpText = values.smp ?? '1';
  const cpus = /^[1-8]$/.test(smpText) ? Number(smpText) : NaN;
  if (Number.isNaN(cpus)) throw new UsageError(`invalid --smp '${smpText}': expected a number of harts, 1 to 8`);
  const jit = values.jit ?? 'on';
  if (jit !== 'on' && jit !== 'off') throw new UsageError(`invalid --jit '${jit}': expected on or off`);
  const jitCache = values['jit-cache'];
  if (jitCache !== undefined && jitCache !== 'on' && jitCache !== 'off') throw new UsageError(`invalid --jit-cache '${jitCache}': expected on or off`);
  const hartThreads = values['hart-threads'] ?? DEFAULT_HART_THREADS;
  if (hartThreads !== 'on' && hartThreads !== 'off') throw new UsageError(`invalid --hart-threads '${hartThreads}': expected on or off`);
  const rng = values.rng ?? 'off';
  if (rng !== 'on' && rng !== 'off') throw new UsageError(`invalid --rng '${rng}': expected on or off`);
  return {
    kernel: values.kernel,
    initrd: values.initrd,
    append: values.append ?? DEFAULT_APPEND,
    appendGiven: values.append !== undefined,
    memMiB,
    bios: values.bios,
    deterministic: values.deterministic === true,
    cpus,
    hartThreads: hartThreads === 'on',
    mirror: values.mirror === undefined ? undefined : checkMirror(values.mirror),
    disks,
    jit: jit === 'on',
    jitCache: jitCache === undefined ? undefined : jitCache === 'on',
    rng: rng === 'on',
    stats: values.stats === true,
    nics,
    name: values.name,
    balloon: values.balloon === true,
    systemMap: values['system-map'],
    stallTimeoutMs,
    netTexts: values.net,
    restore: values.restore,
    clone: values.clone === true,
    cloneDir: values['clone-dir'],
    snapshotDir: values['snapshot-dir'],
    snapshotAt,
    inputScript: values['input-script'],
    gdb,
  };
}

/** Read an --input-script file: [{instret, data}] in instruction order. */
function readInputScript(path: string): { instret: number; data: string }[] {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read input script ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!Array.isArray(v)) throw new UserError(`input script ${path}: expected a JSON array`);
  let last = -1;
  for (const [i, e] of v.entries()) {
    const ok = typeof e === 'object' && e !== null && Number.isSafeInteger(e.instret) && e.instret >= 0 && typeof e.data === 'string';
    if (!ok) throw new UserError(`input script ${path}: entry ${i} must be {"instret": N, "data": "text"}`);
    if (e.instret < last) throw new UserError(`input script ${path}: entry ${i} is before the one above it`);
    last = e.instret;
  }
  return v as { instret: number; data: string }[];
}

async function runCommand(args: string[], io: MainIo): Promise<number> {
  const opts = parseRunArgs(args);
  if (opts === 'help') {
    io.stdout.write(RUN_HELP);
    return 0;
  }

  const inputScript = opts.inputScript === undefined ? undefined : readInputScript(opts.inputScript);
  if (opts.restore !== undefined) return restoreCommand(opts, io, inputScript);

  // Check the files the user named before anything slow happens.
  if (opts.kernel !== undefined) checkKernel(opts.kernel, 'kernel');
  if (opts.initrd !== undefined) checkReadableFile(opts.initrd, 'initrd');
  if (opts.bios !== undefined) checkFirmware(opts.bios);
  // Formats are settled here, once: a guessed raw disk gets the write guard (storage/probe-guard.ts).
  const diskFormats: { format: 'raw' | 'qcow2'; guessed: boolean }[] = [];
  for (const d of opts.disks) {
    const f = await checkDisk(d);
    if (f.guessed && f.format === 'raw' && !d.readOnly) {
      io.stderr.write(`tsvisor: warning: disk ${d.path} has no format=; it was guessed as raw, and guest writes that would make it look like qcow2 are refused (give format=raw to say it is raw)\n`);
    }
    diskFormats.push(f);
  }
  if (!opts.appendGiven && opts.disks.length > 0) {
    // A root disk made by 'tsvisor image build --rootfs' (ext4 label tsvisor-root) boots as the root file system.
    const { rootfsAppendFor } = await import('../image/rootfs-disk.js');
    const extra = await rootfsAppendFor(opts.disks[0]);
    if (extra !== undefined) {
      opts.append = `${opts.append} ${extra}`;
      io.stderr.write(`tsvisor: ${opts.disks[0].path} is a tsvisor root disk; kernel command line "${opts.append}"\n`);
    }
  }

  const { createNicHosts } = await import('../net/create-backend.js');
  const vmName = opts.name ?? (opts.disks[0] ? resolvePath(opts.disks[0].path) : 'tsvisor');
  // NIC backends first: a host port in use or a missing TAP device is reported before anything slow.
  let nics;
  try {
    nics = await createNicHosts(opts.nics ?? defaultNics(opts), vmName);
  } catch (e) {
    throw new UserError(e instanceof Error ? e.message : String(e));
  }

  let kernel = opts.kernel;
  let initrd = opts.initrd;
  if (kernel === undefined) {
    const guest = await buildDefaultGuest(io, { mirror: opts.mirror });
    kernel = guest.kernel;
    initrd = initrd ?? guest.initrd;
    checkKernel(kernel, 'default guest kernel');
    if (initrd !== undefined) checkReadableFile(initrd, 'initrd');
  }

  const systemMap = await findSystemMap(opts.systemMap, kernel);

  const { defaultWasmPath } = await import('../vm/vm-handle.js');
  const wasmPath = defaultWasmPath();
  try {
    if (!statSync(wasmPath).isFile()) throw new Error('not a file');
  } catch {
    throw new UserError(`the CPU core is not built (missing ${wasmPath}); run 'npm run build'`);
  }

  const config = {
    kernel: resolvePath(kernel),
    initrd: initrd === undefined ? undefined : resolvePath(initrd),
    append: opts.append,
    memMiB: opts.memMiB,
    bios: opts.bios === undefined ? undefined : resolvePath(opts.bios),
    deterministic: opts.deterministic,
    cpus: opts.cpus,
    hartThreads: opts.hartThreads,
    wasmPath,
    disks: opts.disks.map((d, i) => ({
      path: resolvePath(d.path), format: diskFormats[i].format, guardProbedRaw: diskFormats[i].guessed && diskFormats[i].format === 'raw',
      readOnly: d.readOnly, serial: d.serial, limits: d.limits,
    })),
    jit: opts.jit,
    jitCache: opts.jitCache,
    rng: opts.rng,
    stats: opts.stats,
    balloon: opts.balloon,
    systemMap,
    stallTimeoutMs: opts.stallTimeoutMs,
    name: vmName,
    nicSpecs: opts.netTexts ?? (opts.deterministic ? [] : ['user']),
    snapshotAt: opts.snapshotAt === undefined ? undefined : { instret: opts.snapshotAt, dir: resolvePath(opts.snapshotDir!) },
    inputScript,
    gdb: opts.gdb ? { wait: opts.gdb.wait, checkpointEvery: opts.gdb.checkpointEvery } : undefined,
  };
  return startLocked(config, nics, opts, io);
}

/** Take the image locks the daemon's VMs take (held until this process ends), then run the VM attached. */
async function startLocked(
  config: import('../vm/protocol.js').VmConfig,
  nics: import('../vm/vm-handle.js').VmHandleOptions['nics'],
  opts: RunOptions,
  io: MainIo,
): Promise<number> {
  const [{ lockVmImages }, { VmHandle }] = await Promise.all([import('../storage/vm-images.js'), import('../vm/vm-handle.js')]);
  try {
    lockVmImages(config);
  } catch (e) {
    throw new UserError(e instanceof Error ? e.message : String(e));
  }
  return runAttached(new VmHandle(config, { nics }), opts, io);
}

/** The console, statistics and snapshot keys of a started `tsvisor run` VM. */
async function runAttached(vm: import('../vm/vm-handle.js').VmHandle, opts: RunOptions, io: MainIo): Promise<number> {
  const [{ attachConsole }, { restoredText }] = await Promise.all([import('./console.js'), import('../vm/vm-handle.js')]);
  if (opts.stats) {
    const { formatNicStats } = await import('../net/nic-stats.js');
    vm.on('stats', (text) => io.stderr.write(text + formatNicStats(vm.nicStats())));
    process.on('SIGUSR1', () => vm.requestStats());
  }
  const snapshotDir = opts.snapshotDir === undefined ? undefined : resolvePath(opts.snapshotDir);
  const said = (r: { dir: string; instret: number; dataPages: number; ms: number }) =>
    `snapshot written to ${r.dir} at instruction ${r.instret}: ${r.dataPages} pages of memory in ${r.ms.toFixed(0)} ms`;
  vm.on('snapshot', (r) => io.stderr.write(`tsvisor: ${said(r)}\n`));
  // performance.now() on this thread counts from the process's start.
  vm.on('restored', (r) => io.stderr.write(`tsvisor: ${restoredText(r)}; ${performance.now().toFixed(0)} ms since the process started\n`));
  const snapshot = snapshotDir === undefined ? undefined : async () => {
    try {
      return said(await vm.snapshot(snapshotDir));
    } catch (e) {
      return `snapshot failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
  if (snapshot) process.on('SIGUSR2', () => void snapshot().then((m) => io.stderr.write(`tsvisor: ${m}\n`)));
  if (opts.gdb) {
    const { listenForGdb } = await import('./gdb-listen.js');
    const addr = opts.gdb;
    try {
      await listenForGdb(vm, addr, (line) => io.stderr.write(`tsvisor: ${line}\n`));
    } catch (e) {
      throw new UserError(`cannot listen for gdb on ${addr.host}:${addr.port}: ${e instanceof Error ? e.message : String(e)}`);
    }
    io.stderr.write(`tsvisor: gdb stub listening on ${addr.host}:${addr.port}${addr.wait ? ' (the guest waits for it)' : ''}\n`);
  }
  const done = attachConsole(vm, process, { handleProcessEvents: true, snapshot });
  vm.start();
  // The guest's hvc0 takes this terminal's size (with console=hvc0 its shell uses it);
  // a deterministic guest is not told, so it runs the same on any terminal.
  if (process.stdout.isTTY && !opts.deterministic) {
    const tell = () => {
      const { columns, rows } = process.stdout;
      if (columns > 0 && rows > 0) vm.command({ type: 'consoleSize', cols: columns, rows }).catch(() => {});
    };
    tell();
    process.stdout.on('resize', tell);
    void vm.exited.then(() => process.stdout.off('resize', tell));
  }
  return done;
}

/**
 * The System.map whose panic() entry the VM watches: the one named, none for
 * 'none', else one next to the kernel (System.map-VERSION or System.map).
 */
async function findSystemMap(given: string | undefined, kernel: string): Promise<string | undefined> {
  if (given === 'none') return undefined;
  if (given !== undefined) {
    checkReadableFile(given, 'System.map');
    return resolvePath(given);
  }
  const { systemMapCandidates } = await import('../machine/kernel-symbols.js');
  const found = systemMapCandidates(resolvePath(kernel)).find((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  });
  return found;
}

/** `tsvisor run --restore DIR`: the machine from the snapshot, NICs and console from here. */
async function restoreCommand(opts: RunOptions, io: MainIo, inputScript: { instret: number; data: string }[] | undefined): Promise<number> {
  const dir = resolvePath(opts.restore!);
  const { readSnapshot, SnapshotError } = await import('../vm/snapshot.js');
  let snap;
  try {
    snap = readSnapshot(dir);
  } catch (e) {
    if (e instanceof SnapshotError) throw new UserError(e.message);
    throw e;
  }
  const c = snap.config;
  const { createNicHosts } = await import('../net/create-backend.js');
  const savedName = c.name ?? (c.disks?.[0] ? c.disks[0].path : 'tsvisor');
  const vmName = opts.name ?? savedName;
  let disks = c.disks;
  if (opts.clone && disks?.length) {
    const { cloneDisks } = await import('../vm/clone-disks.js');
    try {
      const made = await cloneDisks(disks, opts.cloneDir);
      disks = made.disks;
      io.stderr.write(`tsvisor: clone disk overlays in ${made.dir}\n`);
    } catch (e) {
      throw new UserError(`cannot make the clone's disks: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  let nics;
  const texts = opts.netTexts ?? (c.nicSpecs as string[] | undefined) ?? [];
  try {
    let specs = opts.nics;
    if (!specs) {
      specs = [];
      for (const t of texts) {
        const r = typeof t === 'string' ? parseNetSpec(t) : { ok: false as const, error: 'not a --net text' };
        if (!r.ok) throw new Error(`snapshot NIC: ${r.error}`);
        if (r.spec) specs.push(r.spec);
      }
    }
    // A clone's NICs get MACs of their own (derived from --name, else random)
    // unless --net gives them; the snapshot's MAC would be the original's.
    if (opts.clone && !opts.nics) {
      const { cloneMac } = await import('../net/mac.js');
      specs = specs.map((sp, i) => ({ ...sp, mac: cloneMac(opts.name, i) }));
    }
    nics = await createNicHosts(specs, vmName);
  } catch (e) {
    throw new UserError(e instanceof Error ? e.message : String(e));
  }
  const { defaultWasmPath } = await import('../vm/vm-handle.js');
  const config = {
    ...c,
    wasmPath: defaultWasmPath(),
    jit: opts.jit,
    stats: opts.stats,
    // How the harts run is this run's choice (--hart-threads), not the snapshot's.
    hartThreads: opts.hartThreads,
    restore: dir,
    clone: opts.clone === true,
    disks,
    name: vmName,
    nicSpecs: texts,
    snapshotAt: opts.snapshotAt === undefined ? undefined : { instret: opts.snapshotAt, dir: resolvePath(opts.snapshotDir!) },
    inputScript,
    gdb: opts.gdb ? { wait: opts.gdb.wait, checkpointEvery: opts.gdb.checkpointEvery } : undefined,
  };
  return startLocked(config, nics, opts, io); // a restore locks the snapshot's disks as a boot does
}

// ---- file checks ----

/** Throw a UserError unless `path` is an existing, readable, regular, non-empty file. Returns its size. */
export function checkReadableFile(path: string, what: string): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new UserError(`${what} file not found: ${path}`);
    if (code === 'EACCES') throw new UserError(`cannot access ${what} file (permission denied): ${path}`);
    throw new UserError(`cannot access ${what} file: ${path} (${code ?? 'error'})`);
  }
  if (st.isDirectory()) throw new UserError(`${what} is a directory, not a file: ${path}`);
  if (!st.isFile()) throw new UserError(`${what} is not a regular file: ${path}`);
  try {
    accessSync(path, fsConstants.R_OK);
  } catch {
    throw new UserError(`cannot read ${what} file (permission denied): ${path}`);
  }
  if (st.size === 0) throw new UserError(`${what} file is empty: ${path}`);
  return st.size;
}

function readHead(path: string, what: string, n: number): Uint8Array {
  const buf = new Uint8Array(n);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    let got = 0;
    while (got < n) {
      const r = readSync(fd, buf, got, n - got, got);
      if (r === 0) break;
      got += r;
    }
    return buf.subarray(0, got);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read ${what} file: ${path} (${code ?? 'error'})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function checkKernel(path: string, what: string): void {
  checkReadableFile(path, what);
  const kind = classifyExecutable(readHead(path, what, 0x40));
  if (kind !== 'image' && kind !== 'elf-riscv64') {
    throw new UserError(`not a RISC-V kernel (expected a Linux Image or ELF64 RISC-V executable): ${path}`);
  }
}

/**
 * Check a --disk file and open it once, so a bad or unsupported image fails here with one line.
 * Returns its format, and whether it was guessed (no format= given).
 */
async function checkDisk(d: DiskSpec): Promise<{ format: 'raw' | 'qcow2'; guessed: boolean }> {
  checkReadableFile(d.path, 'disk');
  if (!d.readOnly) {
    try {
      accessSync(d.path, fsConstants.W_OK);
    } catch {
      throw new UserError(`disk file is not writable (use readonly=on): ${d.path}`);
    }
  }
  const { openDisk, detectFormat } = await import('../storage/open.js');
  try {
    const format = d.format ?? detectFormat(d.path);
    const disk = await openDisk(d.path, { format, readOnly: true });
    disk.close();
    return { format, guessed: d.format === undefined };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // Name the file unless the message already does.
    throw new UserError(msg.includes(d.path) ? msg : `cannot use disk ${d.path}: ${msg}`);
  }
}

function checkFirmware(path: string): void {
  checkReadableFile(path, 'bios');
  // Raw binaries (OpenSBI fw_dynamic.bin) carry no header to check; an ELF must be RISC-V.
  if (classifyExecutable(readHead(path, 'bios', 0x40)) === 'elf-other') {
    throw new UserError(`not a RISC-V firmware (expected a raw binary or ELF64 RISC-V executable): ${path}`);
  }
}

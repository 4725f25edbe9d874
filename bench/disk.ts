// Disk I/O inside the guest: the project's bench/guest/diskio.c (O_DIRECT on
// /dev/vda; sequential 1 MiB and random 4 KiB writes and reads) run in the
// default guest with a virtio-blk data disk, under QEMU (qemu-system-riscv64
// -M virt, TCG) and under tsvisor, on a raw and on a qcow2 image. Every boot
// gets a fresh image; the emulators run one after the other, never together.
//
//   npm run bench:disk -- [--runs N] [--json] [--formats raw,qcow2] [--emulators qemu,tsvisor]

import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, ftruncateSync, rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseBenchArgs } from './lib/args.js';
import { ensureDefaultGuest, defaultCacheDir } from '../src/image/default-guest.js';
import { ConsoleSession } from './lib/console.js';
import { medianBy, table } from './lib/format.js';
import { buildGuestPrograms, buildBenchInitrd, CFLAGS, TSVISOR_BIN } from './lib/guest-build.js';
import { compilerVersion, cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';
import { parseStats, perUnit, type StatsSample } from './lib/tsvisor-stats.js';

const TESTS = ['seqwrite', 'seqread', 'randwrite', 'randread'] as const;
type Test = (typeof TESTS)[number];
const FORMATS = ['raw', 'qcow2'] as const;
type Format = (typeof FORMATS)[number];
type Emulator = 'qemu' | 'tsvisor';

const APPEND = 'console=ttyS0';
const MEM = '512M';
/** QEMU's cache modes that make sense here (see bench/README.md). */
const QEMU_CACHE_MODES = ['writeback', 'none', 'writethrough', 'directsync', 'unsafe'];

interface Options {
  runs: number;
  json: boolean;
  formats: Format[];
  emulators: Set<Emulator>;
  /** The region diskio works on (MiB) and its number of random operations. */
  regionMiB: number;
  ops: number;
  /** Virtual size of each image (MiB). */
  imageMiB: number;
  qemuCache: string;
  timeoutMs: number;
  bootTimeoutMs: number;
  tsvisorArgs: string[];
  keepImages: boolean;
  /** Run tsvisor with --stats and, after diskio, plain dd reads with reports around them: what one request costs (the counting slows translated code a little). */
  costs: boolean;
  /** diskio runs this many times in one boot; the figures are the last pass's (2: the guest's I/O path already run and translated once). */
  passes: number;
}

interface DiskLine {
  mibps: number;
  opsps: number;
  seconds: number;
  checksum: string;
}

interface RunResult {
  emulator: Emulator;
  format: Format;
  run: number;
  bootSeconds: number | null;
  tests: Partial<Record<Test, DiskLine>>;
  /** `qemu-img check` of the image afterwards (qcow2 only; null when not run). */
  imageCheck: string | null;
  /** tsvisor with --costs: what one request of a plain dd read costs (from --stats reports before and after). */
  perRequest: (StatsSample & { translatedShare: number; requests: number; what: string })[];
  error: string | null;
}

interface Row {
  test: Test;
  format: Format;
  qemu: DiskLine | null;
  tsvisor: DiskLine | null;
  /** tsvisor throughput / QEMU throughput. */
  ratio: number | null;
  checksumsMatch: boolean | null;
}

// ------------------------------------------------------------------ options

function usage(): string {
  return (
    'usage: npm run bench:disk -- [--runs N] [--json] [--formats raw,qcow2] [--emulators qemu,tsvisor]\n' +
    '                             [--size-mib N] [--ops N] [--image-mib N] [--qemu-cache MODE]\n' +
    '                             [--timeout SECONDS] [--boot-timeout SECONDS] [--tsvisor-arg ARG]... [--keep-images] [--costs] [--passes N]\n'
  );
}

function fail(msg: string): never {
  process.stderr.write(`bench:disk: ${msg}\n${usage()}`);
  process.exit(2);
}

function positiveInt(v: string | undefined, dflt: number, what: string): number {
  const n = Number(v ?? String(dflt));
  if (!Number.isInteger(n) || n < 1) fail(`${what} needs a positive integer`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const values = parseBenchArgs(
    argv,
    {
      runs: { type: 'string' },
      json: { type: 'boolean' },
      formats: { type: 'string' },
      emulators: { type: 'string' },
      'size-mib': { type: 'string' },
      ops: { type: 'string' },
      'image-mib': { type: 'string' },
      'qemu-cache': { type: 'string' },
      timeout: { type: 'string' },
      'boot-timeout': { type: 'string' },
      'tsvisor-arg': { type: 'string', multiple: true },
      'keep-images': { type: 'boolean' },
      costs: { type: 'boolean' },
      passes: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    fail,
  );
  if (values.help) {
    process.stdout.write(usage());
    process.exit(0);
  }
  const formats: Format[] = [];
  for (const f of (values.formats ?? 'raw,qcow2').split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!(FORMATS as readonly string[]).includes(f)) fail(`unknown format "${f}" (raw, qcow2)`);
    if (!formats.includes(f as Format)) formats.push(f as Format);
  }
  if (formats.length === 0) fail('--formats names no format');
  const emulators = new Set<Emulator>();
  for (const e of (values.emulators ?? 'qemu,tsvisor').split(',').map((x) => x.trim()).filter(Boolean)) {
    if (e !== 'qemu' && e !== 'tsvisor') fail(`unknown emulator "${e}" (qemu, tsvisor)`);
    emulators.add(e);
  }
  if (emulators.size === 0) fail('--emulators names no emulator');
  const regionMiB = positiveInt(values['size-mib'], 64, '--size-mib');
  const imageMiB = positiveInt(values['image-mib'], 256, '--image-mib');
  if (regionMiB > imageMiB) fail('--size-mib must not exceed --image-mib');
  const qemuCache = values['qemu-cache'] ?? 'writeback';
  if (!QEMU_CACHE_MODES.includes(qemuCache)) fail(`--qemu-cache: one of ${QEMU_CACHE_MODES.join(', ')}`);
  const timeout = Number(values.timeout ?? '600');
  const bootTimeout = Number(values['boot-timeout'] ?? '600');
  if (!Number.isFinite(timeout) || timeout <= 0) fail('--timeout needs a positive number of seconds');
  if (!Number.isFinite(bootTimeout) || bootTimeout <= 0) fail('--boot-timeout needs a positive number of seconds');
  return {
    runs: positiveInt(values.runs, 1, '--runs'),
    json: values.json === true,
    formats,
    emulators,
    regionMiB,
    ops: positiveInt(values.ops, 4096, '--ops'),
    passes: positiveInt(values.passes, 1, '--passes'),
    imageMiB,
    qemuCache,
    timeoutMs: timeout * 1000,
    bootTimeoutMs: bootTimeout * 1000,
    tsvisorArgs: values['tsvisor-arg'] ?? [],
    keepImages: values['keep-images'] === true,
    costs: values.costs === true,
  };
}

// ------------------------------------------------------------------- images

/** A blank raw image: a sparse file of `mib` MiB. */
function createRaw(path: string, mib: number): void {
  rmSync(path, { force: true });
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, mib * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
}

/** A blank qcow2 image made by tsvisor's own `image create`. */
function createQcow2(path: string, mib: number): void {
  rmSync(path, { force: true });
  execFileSync(process.execPath, [TSVISOR_BIN, 'image', 'create', '--format', 'qcow2', '--size', `${mib}M`, path], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `,` is doubled in a path inside a comma-separated option (both QEMU and tsvisor). */
const escapeComma = (p: string) => p.replace(/,/g, ',,');

function qemuImgCheck(path: string): string | null {
  const r = spawnSync('qemu-img', ['check', '-f', 'qcow2', path], { encoding: 'utf8' });
  if (r.error) return null;
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n');
  return r.status === 0 ? 'clean' : `status ${r.status}: ${out.slice(0, 3).join(' | ')}`;
}

// ------------------------------------------------------------------ session

const DISK_RE = /^DISK (\S+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\S+)$/;

function parseDiskOutput(out: string): { tests: Partial<Record<Test, DiskLine>>; done: boolean; other: string[] } {
  const tests: Partial<Record<Test, DiskLine>> = {};
  const other: string[] = [];
  let done = false;
  for (const line of out.split('\n').map((l) => l.trim()).filter(Boolean)) {
    if (line === 'DISK done') {
      done = true;
      continue;
    }
    const m = DISK_RE.exec(line);
    if (m && (TESTS as readonly string[]).includes(m[1])) {
      tests[m[1] as Test] = { mibps: Number(m[2]), opsps: Number(m[3]), seconds: Number(m[4]), checksum: m[5] };
    } else {
      other.push(line);
    }
  }
  return { tests, done, other };
}

async function runOne(
  emulator: Emulator,
  format: Format,
  run: number,
  kernel: string,
  initrd: string,
  image: string,
  opts: Options,
  say: (s: string) => void,
): Promise<RunResult> {
  const result: RunResult = { emulator, format, run, bootSeconds: null, tests: {}, imageCheck: null, error: null, perRequest: [] };
  const [command, args] =
    emulator === 'qemu'
      ? [
          'qemu-system-riscv64',
          [
            '-M', 'virt', '-m', MEM, '-nographic', '-kernel', kernel, '-initrd', initrd, '-append', APPEND,
            '-drive', `file=${escapeComma(image)},format=${format},if=none,id=d0,cache=${opts.qemuCache}`,
            '-device', 'virtio-blk-device,drive=d0',
          ],
        ]
      : [
          process.execPath,
          [TSVISOR_BIN, 'run', '--kernel', kernel, '--initrd', initrd, '--append', APPEND, '--mem', MEM,
            '--disk', `${escapeComma(image)},format=${format}`, ...(opts.costs ? ['--stats'] : []), ...opts.tsvisorArgs],
        ];
  const session = new ConsoleSession(command, args);
  try {
    result.bootSeconds = await session.waitForShell(opts.bootTimeoutMs);
    say(`  ${emulator} ${format}: shell prompt after ${result.bootSeconds.toFixed(1)} s`);
    for (let pass = 1; pass <= opts.passes && !result.error; pass++) {
      const out = await session.run(`/bench/diskio /dev/vda ${opts.regionMiB} ${opts.ops}`, opts.timeoutMs);
      const parsed = parseDiskOutput(out);
      result.tests = parsed.tests;
      const label = opts.passes > 1 ? ` (pass ${pass}/${opts.passes})` : '';
      for (const t of TESTS) {
        const d = parsed.tests[t];
        if (d) say(`  ${emulator} ${format}: ${t} ${d.mibps.toFixed(2)} MiB/s ${d.opsps.toFixed(0)} ops/s${d.checksum === '-' ? '' : ` (checksum ${d.checksum})`}${label}`);
      }
      if (!parsed.done) result.error = `diskio did not finish: ${parsed.other.join(' | ').slice(0, 400) || 'no output'}`;
    }
    if (emulator === 'tsvisor' && opts.costs) {
      // Plain O_DIRECT reads (busybox dd), nothing else running: --stats reports around each give the cost of one request.
      for (const [name, bs, count] of [['1 MiB read', '1M', 64], ['4 KiB read', '4k', 2048]] as const) {
        const before = parseStats(await session.tsvisorStats());
        await session.run(`dd if=/dev/vda of=/dev/null bs=${bs} count=${count} iflag=direct 2>/dev/null`, opts.timeoutMs);
        const after = parseStats(await session.tsvisorStats());
        if (!before || !after || after.diskOps <= before.diskOps) continue;
        const requests = after.diskOps - before.diskOps;
        const p = { ...perUnit(before, after, requests), requests, what: name };
        result.perRequest.push(p);
        say(`  tsvisor ${format}: ${name}, per request (${requests} requests): ${p.instructions.toFixed(0)} guest instructions, ` +
          `${p.mmio.toFixed(2)} MMIO exits, ${p.notifies.toFixed(2)} notifications, ${p.interrupts.toFixed(2)} interrupts raised, ${p.externalIrqs.toFixed(2)} taken`);
      }
    }
    await session.poweroff();
  } catch (e) {
    result.error = (e as Error).message;
    await session.kill();
  }
  if (result.error) say(`  ${emulator} ${format}: ${result.error}`);
  if (format === 'qcow2') result.imageCheck = qemuImgCheck(image);
  return result;
}

// --------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const say = (s: string) => process.stderr.write(s + '\n');

  const guest = await ensureDefaultGuest({ progress: false, log: (s) => say(s.replace(/\n$/, '')) });
  const workDir = join(defaultCacheDir(), 'bench-disk');
  const bins = buildGuestPrograms(['diskio'] as const, join(workDir, 'bin'), say);
  const initrd = join(workDir, 'initramfs-disk.cpio.gz');
  buildBenchInitrd(guest.initrd, bins, initrd);
  const imageDir = join(workDir, 'images');
  mkdirSync(imageDir, { recursive: true });
  // One blank qcow2 made once; each boot gets a fresh copy of it.
  const qcowTemplate = join(imageDir, 'template.qcow2');
  if (opts.formats.includes('qcow2')) createQcow2(qcowTemplate, opts.imageMiB);

  const results: RunResult[] = [];
  const order: Emulator[] = (['qemu', 'tsvisor'] as const).filter((e) => opts.emulators.has(e));
  for (let run = 1; run <= opts.runs; run++) {
    for (const format of opts.formats) {
      for (const emulator of order) {
        const image = join(imageDir, `${emulator}-${format}.img`);
        if (format === 'raw') createRaw(image, opts.imageMiB);
        else copyFileSync(qcowTemplate, image);
        say(`${emulator}, ${format} image (${opts.imageMiB} MiB), run ${run}/${opts.runs}`);
        results.push(await runOne(emulator, format, run, guest.kernel, initrd, image, opts, say));
        if (!opts.keepImages) rmSync(image, { force: true });
      }
    }
  }
  if (!opts.keepImages) rmSync(qcowTemplate, { force: true });

  const median = (emulator: Emulator, format: Format, test: Test): DiskLine | null =>
    medianBy(
      results.filter((r) => r.emulator === emulator && r.format === format).flatMap((r) => (r.tests[test] ? [r.tests[test]!] : [])),
      (d) => d.mibps,
    );
  const rows: Row[] = [];
  for (const test of TESTS) {
    for (const format of opts.formats) {
      const q = median('qemu', format, test);
      const t = median('tsvisor', format, test);
      rows.push({
        test,
        format,
        qemu: q,
        tsvisor: t,
        ratio: q && t && q.mibps > 0 ? t.mibps / q.mibps : null,
        checksumsMatch: q && t && q.checksum !== '-' ? q.checksum === t.checksum : null,
      });
    }
  }
  // Every read of the same data must give the same checksum: across runs, formats and emulators.
  const mismatches: string[] = [];
  for (const test of ['seqread', 'randread'] as const) {
    const sums = new Set(results.flatMap((r) => (r.tests[test] ? [r.tests[test]!.checksum] : [])));
    if (sums.size > 1) {
      mismatches.push(`${test}: ${results.filter((r) => r.tests[test]).map((r) => `${r.emulator}/${r.format}#${r.run}=${r.tests[test]!.checksum}`).join(', ')}`);
    }
  }
  const seqRows = rows.filter((r) => r.test === 'seqwrite' || r.test === 'seqread');
  const seqRatios = seqRows.flatMap((r) => (r.ratio === null ? [] : [r.ratio]));
  const worstSeq = seqRatios.length === seqRows.length && seqRatios.length > 0 ? Math.min(...seqRatios) : null;
  const targetMet = worstSeq === null ? null : worstSeq >= 0.7;
  const errors = results.filter((r) => r.error).map((r) => `${r.emulator} ${r.format} run ${r.run}: ${r.error}`);
  const badChecks = results.filter((r) => r.imageCheck !== null && r.imageCheck !== 'clean').map((r) => `${r.emulator} qcow2 run ${r.run}: qemu-img check: ${r.imageCheck}`);

  const host = {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpuModel(),
    cores: cpus().length,
    node: process.version,
    qemu: qemuVersion(),
    compiler: compilerVersion(),
    kernel: guest.version,
  };
  const setup = {
    mem: MEM,
    append: APPEND,
    regionMiB: opts.regionMiB,
    randomOps: opts.ops,
    imageMiB: opts.imageMiB,
    qemuDrive: `format=raw|qcow2,if=none,cache=${opts.qemuCache} + virtio-blk-device`,
    tsvisorDisk: '--disk IMG,format=raw|qcow2',
    cflags: CFLAGS,
    passes: opts.passes,
  };

  if (opts.json) {
    process.stdout.write(
      JSON.stringify({ benchmark: 'disk', runs: opts.runs, host, setup, results: rows, sessions: results, seqTarget: { worstRatio: worstSeq, met: targetMet }, mismatches, errors, imageChecks: badChecks }, null, 2) + '\n',
    );
  } else {
    const skipped = (e: Emulator) => (opts.emulators.has(e) ? 'failed' : 'skipped');
    const mib = (d: DiskLine | null, e: Emulator) => (d ? d.mibps.toFixed(1) : skipped(e));
    const iops = (d: DiskLine | null, e: Emulator) => (d ? d.opsps.toFixed(0) : skipped(e));
    const tableRows = [['test', 'format', 'QEMU MiB/s', 'tsvisor MiB/s', 'QEMU ops/s', 'tsvisor ops/s', 'tsvisor/QEMU', 'checksum']];
    for (const r of rows) {
      tableRows.push([
        r.test,
        r.format,
        mib(r.qemu, 'qemu'),
        mib(r.tsvisor, 'tsvisor'),
        iops(r.qemu, 'qemu'),
        iops(r.tsvisor, 'tsvisor'),
        r.ratio === null ? '-' : `${r.ratio.toFixed(3)}x`,
        r.checksumsMatch === null ? '-' : r.checksumsMatch ? 'match' : 'MISMATCH',
      ]);
    }
    const out = [
      '',
      `Disk I/O inside the guest, O_DIRECT on /dev/vda${opts.runs > 1 ? `, median of ${opts.runs} runs` : ''}: ` +
        `seq = 1 MiB requests over ${opts.regionMiB} MiB, rand = ${opts.ops} requests of 4 KiB; writes include fdatasync`,
      `QEMU: -drive ...,cache=${opts.qemuCache} -device virtio-blk-device; tsvisor: --disk IMG,format=F; ${opts.imageMiB} MiB images, fresh for each boot`,
      ...(opts.passes > 1 ? [`figures of pass ${opts.passes} of ${opts.passes} in one boot (the guest's I/O path already ran; the image already written, so qcow2 writes overwrite)`] : []),
      '',
      table(tableRows, new Set([2, 3, 4, 5, 6])),
      '',
      worstSeq === null
        ? 'target (sequential 1 MiB at least 0.7x of QEMU): not measured'
        : `target (sequential 1 MiB, ratio >= 0.7): ${targetMet ? 'met' : 'NOT met'} (worst ratio ${worstSeq.toFixed(3)}x)`,
      `date:     ${host.date}`,
      `cpu:      ${host.cpu} (${host.cores} cores)`,
      `node:     ${host.node}`,
      `qemu:     ${host.qemu}`,
      `kernel:   ${host.kernel}`,
      `compiler: ${host.compiler} ${CFLAGS.join(' ')}`,
      '',
    ];
    for (const r of results) {
      for (const p of r.perRequest) {
        out.push(`tsvisor ${r.format} run ${r.run}, ${p.what} (dd, O_DIRECT), per request: ${p.instructions.toFixed(0)} guest instructions, ` +
          `${p.mmio.toFixed(2)} MMIO exits, ${p.notifies.toFixed(2)} notifications, ${p.interrupts.toFixed(2)} interrupts raised, ${p.externalIrqs.toFixed(2)} taken`);
      }
    }
    for (const m of mismatches) out.push(`!!! CHECKSUM MISMATCH ${m}`);
    for (const e of errors) out.push(`error: ${e}`);
    for (const c of badChecks) out.push(`warning: ${c}`);
    process.stdout.write(out.join('\n') + (out[out.length - 1] === '' ? '' : '\n'));
  }
  const incomplete = rows.some((r) => (opts.emulators.has('qemu') && !r.qemu) || (opts.emulators.has('tsvisor') && !r.tsvisor));
  process.exitCode = mismatches.length > 0 || errors.length > 0 || incomplete ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:disk: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});

// Live migration, snapshot, restore and clone benchmark, side by side with
// QEMU in the same run on the same guest (the default kernel and initramfs plus
// bench/guest/dirty.c, 512 MiB of RAM):
//
// - live migration on loopback, for a guest idle at its prompt and for one
//   dirtying 64 MiB hard: QEMU from a source to a `-incoming tcp:` destination
//   through QMP `migrate`; tsvisor between two daemons with their own state
//   directories, through `tsvisor migrate`. Same downtime limit for both.
//   Reported: total time, downtime, bytes sent, rounds, as each reports them.
// - snapshot of a guest idle at its prompt, restore to an answering console
//   (QEMU: `migrate` of a stopped VM to a file and `-incoming exec:cat FILE`),
//   and a cold boot to an answering console.
// - host memory (PSS) of N idle clones of the snapshot (`tsvisor clone`).
//
//   npm run bench:migrate -- [--json] [--only idle,dirty,snapshot,clones]
//       [--clones N] [--dirty-mib N] [--downtime-ms N] [--timeout SECONDS]

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest, defaultCacheDir } from '../src/image/default-guest.js';
import { buildBenchInitrd, buildGuestPrograms } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';
import { table } from './lib/format.js';
import { qemuLiveMigration, qemuSnapshotRestore, type GuestSpec, type MigrationCase, type MigrationFigures, type QemuSnapshotFigures } from './lib/qemu-migrate.js';
import { tsvisorClones, tsvisorSnapshotRestore, type CloneFigures, type TsvisorSnapshotFigures } from './lib/tsvisor-snapshot.js';
import { tsvisorLiveMigration } from './lib/tsvisor-migrate.js';

const MEM_MIB = 512;
const APPEND = 'console=ttyS0';
const SETTLE_MS = 3000;
/** QEMU's own default downtime limit; tsvisor's too. */
const DEFAULT_DOWNTIME_MS = 300;
/** QEMU caps migration bandwidth at 128 MiB/s by default; tsvisor has no cap, so QEMU gets none that loopback reaches either. */
const QEMU_MAX_BANDWIDTH = 10 * 1024 ** 3;
const SECTIONS = ['idle', 'dirty', 'snapshot', 'clones'] as const;
type Section = (typeof SECTIONS)[number];

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };

async function attempt<T>(what: string, say: (s: string) => void, f: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    say(`${what}: ${error}`);
    return { ok: false, error };
  }
}

function options() {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      only: { type: 'string' },
      clones: { type: 'string', default: '10' },
      'dirty-mib': { type: 'string', default: '64' },
      'downtime-ms': { type: 'string', default: String(DEFAULT_DOWNTIME_MS) },
      timeout: { type: 'string', default: '600' },
    },
    strict: true,
  });
  const int = (name: string, text: string, min: number, max: number) => {
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(n >= min && n <= max)) throw new Error(`bad --${name} '${text}' (${min}..${max})`);
    return n;
  };
  const only = (values.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim());
  for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`bad --only '${s}' (one of ${SECTIONS.join(', ')})`);
  return {
    json: values.json === true,
    only: new Set(only as Section[]),
    clones: int('clones', values.clones!, 1, 64),
    dirtyMiB: int('dirty-mib', values['dirty-mib']!, 1, 256),
    downtimeMs: int('downtime-ms', values['downtime-ms']!, 1, 60_000),
    timeoutMs: int('timeout', values.timeout!, 10, 7200) * 1000,
  };
}

const fmtMs = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x < 10 ? x.toFixed(1) : x.toFixed(0));
const fmtMiB = (b: number | undefined) => (b === undefined || !Number.isFinite(b) ? '-' : (b / 1024 ** 2).toFixed(1));
const ratio = (t: number | undefined, q: number | undefined) =>
  t === undefined || q === undefined || !Number.isFinite(t) || !Number.isFinite(q) || q === 0 ? '-' : `${(t / q).toFixed(2)}x`;

async function main(): Promise<void> {
  const opts = options();
  const say = (t: string) => process.stderr.write(`bench:migrate: ${t}\n`);
  const guest = await ensureDefaultGuest({ progress: false, log: (s) => say(s.replace(/\n$/, '')) });
  const workDir = join(defaultCacheDir(), 'bench-migrate');
  const bins = buildGuestPrograms(['dirty'] as const, join(workDir, 'bin'), say);
  const initrd = join(workDir, 'initrd-migrate.img');
  buildBenchInitrd(guest.initrd, bins, initrd);
  const g: GuestSpec = { kernel: guest.kernel, initrd, memMiB: MEM_MIB, append: APPEND };
  const tmp = mkdtempSync(join(tmpdir(), 'tsvisor-bench-migrate-'));
  const load = { start: loadavg()[0]!, end: 0 };

  const cases: MigrationCase[] = [
    { name: 'idle', workload: null },
    { name: 'dirty', workload: `/bench/dirty ${opts.dirtyMiB} &` },
  ];
  const migrations: Record<string, { qemu: Outcome<MigrationFigures>; tsvisor: Outcome<MigrationFigures> }> = {};
  let snap: { qemu: Outcome<QemuSnapshotFigures>; tsvisor: Outcome<TsvisorSnapshotFigures> } | null = null;
  let clones: Outcome<CloneFigures> | null = null;
  try {
    for (const c of cases) {
      if (!opts.only.has(c.name)) continue;
      say(`qemu ${c.name}: live migration`);
      const qemu = await attempt(`qemu ${c.name}`, say, () =>
        qemuLiveMigration(g, c, tmp, { downtimeMs: opts.downtimeMs, maxBandwidth: QEMU_MAX_BANDWIDTH, timeoutMs: opts.timeoutMs, say }));
      say(`tsvisor ${c.name}: live migration`);
      const tsvisor = await attempt(`tsvisor ${c.name}`, say, () =>
        tsvisorLiveMigration(g, c, tmp, { downtimeMs: opts.downtimeMs, timeoutMs: opts.timeoutMs, say }));
      migrations[c.name] = { qemu, tsvisor };
    }
    const snapDir = join(tmp, 'snap');
    if (opts.only.has('snapshot') || opts.only.has('clones')) {
      say('qemu: snapshot and restore');
      const qemu = await attempt('qemu snapshot', say, () => qemuSnapshotRestore(g, tmp, { settleMs: SETTLE_MS, timeoutMs: opts.timeoutMs, say }));
      say('tsvisor: snapshot and restore');
      const tsvisor = await attempt('tsvisor snapshot', say, () => tsvisorSnapshotRestore(g, snapDir, { settleMs: SETTLE_MS, timeoutMs: opts.timeoutMs, say }));
      snap = { qemu, tsvisor };
      if (opts.only.has('clones') && tsvisor.ok) {
        say(`tsvisor: ${opts.clones} clones`);
        clones = await attempt('tsvisor clones', say, () => tsvisorClones(snapDir, join(tmp, 'clones'), opts.clones, { settleMs: 5000, timeoutMs: opts.timeoutMs }));
      }
    }
  } finally {
    load.end = loadavg()[0]!;
    rmSync(tmp, { recursive: true, force: true });
  }

  const result = {
    date: new Date().toISOString(), cpu: cpuModel(), qemu: qemuVersion(), node: process.version,
    hostLoad1m: load, memMiB: MEM_MIB, downtimeLimitMs: opts.downtimeMs, dirtyMiB: opts.dirtyMiB,
    qemuMaxBandwidth: QEMU_MAX_BANDWIDTH,
    migrations, snapshot: snap, clones,
    targets: targets(migrations, snap, clones),
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } else {
    process.stdout.write(report(result) + '\n');
  }
}

type Result = {
  migrations: Record<string, { qemu: Outcome<MigrationFigures>; tsvisor: Outcome<MigrationFigures> }>;
  snapshot: { qemu: Outcome<QemuSnapshotFigures>; tsvisor: Outcome<TsvisorSnapshotFigures> } | null;
  clones: Outcome<CloneFigures> | null;
};

/** The targets: true met, false not met, null not measured. */
function targets(m: Result['migrations'], s: Result['snapshot'], c: Result['clones']) {
  const both = (k: string) => {
    const r = m[k];
    return r && r.qemu.ok && r.tsvisor.ok ? { q: r.qemu.value, t: r.tsvisor.value } : null;
  };
  const idle = both('idle');
  const dirty = both('dirty');
  const worstClone = c?.ok ? Math.max(...c.value.clones.map((x) => x.pssKiB - x.writtenKiB)) : null;
  return {
    idleDowntimeAtMostQemuAndUnder300ms: idle ? idle.t.downtimeMs <= idle.q.downtimeMs && idle.t.downtimeMs < 300 : null,
    idleTotalAtMostQemu: idle ? idle.t.totalMs <= idle.q.totalMs : null,
    dirtyTotalAtMostQemu: dirty ? dirty.t.totalMs <= dirty.q.totalMs : null,
    dirtyDowntimeAtMostQemu: dirty ? dirty.t.downtimeMs <= dirty.q.downtimeMs : null,
    restoreUnder50ms: s?.tsvisor.ok ? s.tsvisor.value.restoreMs + s.tsvisor.value.restoredToAnswerMs < 50 : null,
    clonesUnder32MiBEach: worstClone === null ? null : worstClone < 32 * 1024,
  };
}

function report(r: Result & { date: string; cpu: string; qemu: string; node: string; hostLoad1m: { start: number; end: number }; downtimeLimitMs: number; dirtyMiB: number; memMiB: number; targets: ReturnType<typeof targets> }): string {
  const out: string[] = [];
  if (Object.keys(r.migrations).length > 0) {
    out.push('', `Live migration on loopback, ${r.memMiB} MiB guest, downtime limit ${r.downtimeLimitMs} ms (QEMU: max-bandwidth unlimited, auto-converge for the dirty case)`);
  }
  const rows: string[][] = [['case', 'emulator', 'total ms', 'downtime ms', 'MiB sent', 'rounds', 'throttle %', 'total vs QEMU', 'downtime vs QEMU']];
  for (const [name, { qemu, tsvisor }] of Object.entries(r.migrations)) {
    const label = name === 'dirty' ? `dirty ${r.dirtyMiB} MiB` : name;
    for (const [who, o] of [['QEMU', qemu], ['tsvisor', tsvisor]] as const) {
      if (!o.ok) {
        rows.push([label, who, `failed: ${o.error.slice(0, 70)}`, '', '', '', '', '', '']);
        continue;
      }
      const v = o.value;
      const q = qemu.ok ? qemu.value : undefined;
      rows.push([label, who, fmtMs(v.totalMs), fmtMs(v.downtimeMs), fmtMiB(v.bytes), String(v.rounds), v.throttlePct === null ? '-' : String(v.throttlePct),
        who === 'QEMU' ? '' : ratio(v.totalMs, q?.totalMs), who === 'QEMU' ? '' : ratio(v.downtimeMs, q?.downtimeMs)]);
    }
  }
  if (rows.length > 1) out.push(table(rows, new Set([2, 3, 4, 5, 6, 7, 8])));
  for (const [name, { tsvisor }] of Object.entries(r.migrations)) {
    const st = tsvisor.ok ? tsvisor.value.steps : undefined;
    // The stop-and-copy's steps, from the hold on: where the downtime went.
    if (st && st.held !== undefined) {
      const after = Object.entries(st).filter(([, at]) => at >= st.held!).map(([k, at]) => `${k} +${(at - st.held!).toFixed(0)}`);
      out.push(`  tsvisor ${name}: steps after the hold (ms): ${after.join(', ')}`);
    }
  }
  if (r.snapshot) {
    const q = r.snapshot.qemu.ok ? r.snapshot.qemu.value : undefined;
    const t = r.snapshot.tsvisor.ok ? r.snapshot.tsvisor.value : undefined;
    out.push('', 'Snapshot and restore of the guest idle at its prompt');
    if (!r.snapshot.qemu.ok) out.push(`  QEMU failed: ${r.snapshot.qemu.error}`);
    if (!r.snapshot.tsvisor.ok) out.push(`  tsvisor failed: ${r.snapshot.tsvisor.error}`);
    out.push(table([
      ['measure', 'QEMU', 'tsvisor', 'ratio'],
      ['cold boot to answering console, ms', fmtMs(q?.coldBootMs), fmtMs(t?.coldBootMs), ratio(t?.coldBootMs, q?.coldBootMs)],
      ['snapshot, ms', fmtMs(q?.snapshotMs), fmtMs(t?.snapshotMs), ratio(t?.snapshotMs, q?.snapshotMs)],
      ['snapshot size, MiB', fmtMiB(q?.snapshotBytes), fmtMiB(t ? t.dataPages * 4096 : undefined), ''],
      ['process start to answering console, ms', fmtMs(q?.restoreToAnswerMs), fmtMs(t?.restoreToAnswerMs), ratio(t?.restoreToAnswerMs, q?.restoreToAnswerMs)],
      ['tsvisor restore + console answer, ms', '', t ? `${fmtMs(t.restoreMs)} + ${fmtMs(t.restoredToAnswerMs)}` : '-', ''],
      ['restored process PSS, MiB', fmtMiB(q ? q.restoredPssKiB * 1024 : undefined), fmtMiB(t ? t.restoredPssKiB * 1024 : undefined), ratio(t?.restoredPssKiB, q?.restoredPssKiB)],
    ], new Set([1, 2, 3])));
    if (t) out.push(`  tsvisor guest memory at restore: ${t.restoreMemory}`);
  }
  if (r.clones) {
    if (!r.clones.ok) out.push('', `Clones: failed: ${r.clones.error}`);
    else {
      const cs = r.clones.value.clones;
      const mean = (f: (x: (typeof cs)[number]) => number) => cs.reduce((s, x) => s + f(x), 0) / cs.length;
      out.push('', `${r.clones.value.count} idle clones of the snapshot (tsvisor clone): mean PSS ${fmtMiB(mean((x) => x.pssKiB) * 1024)} MiB, ` +
        `of which guest pages written ${fmtMiB(mean((x) => x.writtenKiB) * 1024)} MiB; max beyond written pages ${fmtMiB(Math.max(...cs.map((x) => x.pssKiB - x.writtenKiB)) * 1024)} MiB`);
    }
  }
  const yn = (b: boolean | null) => (b === null ? 'not measured' : b ? 'met' : 'NOT met');
  out.push('', 'Targets:',
    `  idle downtime <= QEMU and < 300 ms: ${yn(r.targets.idleDowntimeAtMostQemuAndUnder300ms)}`,
    `  idle total time <= QEMU: ${yn(r.targets.idleTotalAtMostQemu)}`,
    `  dirty total time <= QEMU: ${yn(r.targets.dirtyTotalAtMostQemu)}; dirty downtime <= QEMU: ${yn(r.targets.dirtyDowntimeAtMostQemu)}`,
    `  restore to answering console < 50 ms (tsvisor's restore + answer): ${yn(r.targets.restoreUnder50ms)}`,
    `  clones < 32 MiB each beyond written pages: ${yn(r.targets.clonesUnder32MiBEach)}`,
    '',
    `  ${r.date}; ${r.cpu}; node ${r.node}; ${r.qemu}; host load (1 min) ${r.hostLoad1m.start.toFixed(1)} at start, ${r.hostLoad1m.end.toFixed(1)} at end`,
    '');
  return out.join('\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:migrate: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});

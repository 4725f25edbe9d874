// `npm run fuzz -- TARGET [SECONDS]`: fuzz one target with Jazzer.js (libFuzzer),
// starting from the committed seed corpus fuzz/corpus/TARGET; new inputs go to
// fuzz/.work/TARGET, crashes to fuzz/findings/TARGET (both git-ignored).
// `npm run fuzz -- TARGET --merge`: fold fuzz/.work/TARGET into the corpus (only
// inputs that add coverage). `npm run fuzz:ci`: every target briefly, then one
// "fuzz: N passed, N failed" line; a crash fails the run.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setupJazzer, type JazzerEnv } from './lib/jazzer-setup.js';
import { findTarget, TARGETS, type TargetInfo } from './targets.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface RunResult {
  target: string;
  ok: boolean;
  execs: number;
  cov: number;
  ft: number;
  corpus: number;
  seconds: number;
  finding: string | null;
}

function targetFile(t: TargetInfo): string {
  return join(root, 'dist', 'fuzz', 'targets', `${t.name}.js`);
}

function fuzzOnce(j: JazzerEnv, t: TargetInfo, seconds: number, opts: { merge?: boolean; quiet?: boolean } = {}): Promise<RunResult> {
  const work = join(root, 'fuzz', '.work', t.name);
  const corpus = join(root, 'fuzz', 'corpus', t.name);
  const findings = join(root, 'fuzz', 'findings', t.name);
  for (const d of [work, corpus, findings]) mkdirSync(d, { recursive: true });
  const dirs = opts.merge ? [corpus, work] : [work, corpus];
  const args = [
    j.cli, targetFile(t), ...dirs,
    ...(t.sync ? ['--sync'] : []),
    '-i', join(root, 'dist', 'src') + '/',
    '--timeout', '20000',
    '--',
    ...(opts.merge ? ['-merge=1'] : [`-max_total_time=${seconds}`]),
    `-max_len=${t.maxLen}`,
    `-artifact_prefix=${findings}/`,
    '-print_final_stats=1',
    '-rss_limit_mb=4096',
  ];
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: root, env: j.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const take = (chunk: Buffer) => {
      const s = chunk.toString();
      log += s;
      if (log.length > 1_000_000) log = log.slice(-200_000);
      if (!opts.quiet) process.stderr.write(s);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', (code) => {
      const last = [...log.matchAll(/#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/g)].pop();
      const units = /stat::number_of_executed_units: (\d+)/.exec(log);
      const artifact = /Test unit written to (\S+)/.exec(log);
      const res: RunResult = {
        target: t.name,
        ok: code === 0,
        execs: units ? Number(units[1]) : last ? Number(last[1]) : 0,
        cov: last ? Number(last[2]) : 0,
        ft: last ? Number(last[3]) : 0,
        corpus: last ? Number(last[4]) : 0,
        seconds: Math.round((Date.now() - started) / 1000),
        finding: artifact ? artifact[1] : code === 0 ? null : `exit ${code}`,
      };
      if (!res.ok && opts.quiet) process.stderr.write(log.slice(-6000));
      done(res);
    });
  });
}

function summary(r: RunResult): string {
  const status = r.ok ? 'ok' : `FAILED (${r.finding ?? 'no details'})`;
  return `${r.target}: ${r.execs} execs in ${r.seconds}s, cov ${r.cov} ft ${r.ft}, corpus ${r.corpus}: ${status}`;
}

async function main(argv: string[]): Promise<number> {
  const ci = argv.includes('--ci');
  const merge = argv.includes('--merge');
  const pos = argv.filter((a) => !a.startsWith('--'));
  if (!ci && pos.length === 0) {
    process.stderr.write(`usage: npm run fuzz -- TARGET [SECONDS] | TARGET --merge | --ci\ntargets:\n${TARGETS.map((t) => `  ${t.name.padEnd(15)} ${t.what}`).join('\n')}\n`);
    return 2;
  }
  let j: JazzerEnv;
  try {
    j = setupJazzer(root);
  } catch (e) {
    process.stderr.write(`fuzz: ${(e as Error).message}\n`);
    return 1;
  }
  if (ci) {
    const seconds = Number(process.env.TSVISOR_FUZZ_CI_SECONDS ?? 10);
    console.log(`fuzz: ${j.note}; ${TARGETS.length} targets, ${seconds}s each`);
    let passed = 0;
    let failed = 0;
    for (const t of TARGETS) {
      const r = await fuzzOnce(j, t, seconds, { quiet: true });
      console.log(summary(r));
      if (r.ok) passed++;
      else failed++;
    }
    console.log(`fuzz: ${passed} passed, ${failed} failed`);
    return failed === 0 ? 0 : 1;
  }
  const t = findTarget(pos[0]);
  if (!t) {
    process.stderr.write(`fuzz: unknown target "${pos[0]}" (one of: ${TARGETS.map((x) => x.name).join(', ')})\n`);
    return 2;
  }
  if (merge) {
    const before = readdirSync(join(root, 'fuzz', 'corpus', t.name)).length;
    const r = await fuzzOnce(j, t, 0, { merge: true, quiet: true });
    const after = readdirSync(join(root, 'fuzz', 'corpus', t.name)).length;
    console.log(`${t.name}: corpus ${before} -> ${after} inputs${r.ok ? '' : ` (merge failed: ${r.finding})`}`);
    return r.ok ? 0 : 1;
  }
  const seconds = pos[1] !== undefined ? Number(pos[1]) : 60;
  if (!Number.isInteger(seconds) || seconds <= 0) {
    process.stderr.write(`fuzz: SECONDS must be a positive whole number, not "${pos[1]}"\n`);
    return 2;
  }
  console.log(`fuzz: ${j.note}`);
  const r = await fuzzOnce(j, t, seconds);
  console.log(`\n${summary(r)}`);
  return r.ok ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));

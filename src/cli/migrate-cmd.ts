// `tsvisor migrate VM --to URL`: live-migrate a VM of the local daemon (or the
// one at --url) to another daemon, showing rounds, MiB sent, the dirty rate
// and the throttle while it runs; `--cancel` stops a running migration.

import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { parseOptions, UsageError, UserError, type MainIo } from './args.js';
import { call, expectOk, target } from './client.js';

export const MIGRATE_HELP = `Usage: tsvisor migrate NAME --to URL --token-file FILE [options]
       tsvisor migrate NAME --cancel

Move the running VM NAME to the daemon at URL (http://HOST:PORT, its --listen
address) while it runs. FILE holds that daemon's bearer token. The disk images
must be at the same paths there (shared storage), unless --copy-storage.

Options:
  --copy-storage          copy the disks too: the destination makes images of its
                          own (same names, in its images directory) while the guest
                          runs, and gets the blocks written meanwhile again
  --downtime-limit MS     longest guest-visible pause (default 300)
  --timeout S             give up (the VM goes on here) after S seconds (default 600)
  --cancel                cancel the running migration of NAME
  --socket PATH           the source daemon's Unix socket (default as 'tsvisor serve')
  --url URL               reach the source daemon over TCP instead
  --source-token-file F   bearer token for --url
`;

interface Progress {
  phase: string;
  round: number;
  bytesSent: number;
  dirtyRate: number;
  bandwidth: number;
  throttlePercent: number;
  totalMs?: number;
  downtimeMs?: number;
  error?: string;
}

const MiB = 1024 * 1024;

export async function migrateCommand(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parseOptions('tsvisor migrate', args, {
    to: { type: 'string' },
    'token-file': { type: 'string' },
    'downtime-limit': { type: 'string' },
    timeout: { type: 'string' },
    'copy-storage': { type: 'boolean' },
    cancel: { type: 'boolean' },
    socket: { type: 'string' },
    url: { type: 'string' },
    'source-token-file': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, true);
  if (values.help) {
    io.stdout.write(MIGRATE_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("'tsvisor migrate' needs one VM name");
  const name = positionals[0];
  const t = target({ socket: values.socket, url: values.url, 'token-file': values['source-token-file'] });
  const path = `/v1/vms/${encodeURIComponent(name)}/migrate`;
  if (values.cancel) {
    if (values.to !== undefined) throw new UsageError('--cancel takes no --to');
    const p = expectOk(await call(t, 'DELETE', path)) as Progress;
    io.stdout.write(`${name}: migration ${p.phase}; the VM runs here\n`);
    return 0;
  }
  if (values.to === undefined) throw new UsageError('--to URL is required (the destination daemon)');
  if (values['token-file'] === undefined) throw new UsageError("--token-file FILE is required (the destination daemon's token)");
  let token: string;
  try {
    token = readFileSync(values['token-file'], 'utf8').trim();
  } catch (e) {
    throw new UserError(`cannot read the token file ${values['token-file']}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const int = (v: string | undefined, flag: string, lo: number, hi: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`${flag} must be a whole number in ${lo}..${hi}`);
    return n;
  };
  const body = {
    to: values.to, token,
    downtimeLimitMs: int(values['downtime-limit'], '--downtime-limit', 1, 60_000),
    timeoutS: int(values.timeout, '--timeout', 1, 86_400),
    ...(values['copy-storage'] ? { copyStorage: true } : {}),
  };
  expectOk(await call(t, 'POST', path, body));
  const tty = io.stderr.isTTY === true;
  let p: Progress;
  for (;;) {
    await delay(200);
    p = expectOk(await call(t, 'GET', path)) as Progress;
    const line = `${name}: ${p.phase} round ${p.round}, ${(p.bytesSent / MiB).toFixed(1)} MiB sent, ${(p.bandwidth / MiB).toFixed(1)} MiB/s, dirty ${Math.round(p.dirtyRate)} pages/s, throttle ${p.throttlePercent}%`;
    if (tty) io.stderr.write(`\r${line}\x1b[K`);
    if (p.phase === 'completed' || p.phase === 'failed' || p.phase === 'cancelled') break;
  }
  if (tty) io.stderr.write('\n');
  if (p.phase !== 'completed') throw new UserError(`migration ${p.phase}: ${p.error ?? 'no reason given'}; the VM runs here`);
  const down = p.downtimeMs === undefined ? 'unknown' : `${Math.round(p.downtimeMs)} ms`;
  io.stdout.write(`${name}: migrated to ${values.to} in ${((p.totalMs ?? 0) / 1000).toFixed(2)} s, downtime ${down}, ${(p.bytesSent / MiB).toFixed(1)} MiB in ${p.round + 1} rounds, throttle ${p.throttlePercent}%\n`);
  return 0;
}

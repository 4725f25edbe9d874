// `tsvisor fleet hosts|vms|create|drain|undrain|events`: the fleet seen from
// any member daemon (the local one, or the one at --url).

import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { parseOptions, UsageError, UserError, type MainIo } from './args.js';
import { call, expectOk, target } from './client.js';
import { parseMemSize } from '../common/size.js';
import { parseDiskSpec } from './disk-spec.js';

export const FLEET_HELP = `Usage: tsvisor fleet COMMAND [options]

The hosts of a fleet (daemons started with 'serve --fleet') as one pool,
asked through any member daemon.

Commands:
  hosts                 members: lease, capacity, allocation, drained or not
  vms                   every VM of the fleet: its host and state
  events                the fleet's recent events (placement, drain, fencing, HA restarts)
  create NAME [opts]    place a VM on a host chosen by policy and create it there
      --kernel FILE --mem SIZE [--initrd FILE] [--disk SPEC]... [--append TEXT]
      --ha              restart it on another host if its host dies (shared disks)
      --policy spread|pack   most free memory first (default), or fill hosts up
      --label KEY=VALUE      only hosts with this label (repeatable)
      --config FILE.json     the create request as JSON (options override it)
      --start           start it once created
  drain HOST [--policy spread|pack] [--wait]
                        live-migrate every VM of HOST to other hosts and mark
                        HOST unschedulable; --wait shows progress until the end
  undrain HOST          make HOST schedulable again

Options:
  --socket PATH         the daemon's Unix socket (default as 'tsvisor serve')
  --url URL             reach a daemon over TCP instead, with --token-file FILE
  --json                print the API's JSON
`;

type Row = string[];

function printTable(io: MainIo, rows: Row[]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) io.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
}

export async function fleetCommand(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parseOptions('tsvisor fleet', args, {
    socket: { type: 'string' },
    url: { type: 'string' },
    'token-file': { type: 'string' },
    json: { type: 'boolean' },
    kernel: { type: 'string' },
    initrd: { type: 'string' },
    append: { type: 'string' },
    mem: { type: 'string' },
    disk: { type: 'string', multiple: true },
    ha: { type: 'boolean' },
    policy: { type: 'string' },
    label: { type: 'string', multiple: true },
    config: { type: 'string' },
    start: { type: 'boolean' },
    wait: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, true);
  const [cmd, arg, ...more] = positionals;
  if (values.help || cmd === undefined) {
    io.stdout.write(FLEET_HELP);
    return values.help ? 0 : 2;
  }
  if (more.length > 0) throw new UsageError(`unexpected argument '${more[0]}' for 'tsvisor fleet ${cmd}'`);
  const t = target(values);
  const json = (v: unknown) => io.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  const policy = values.policy ?? 'spread';
  if (policy !== 'spread' && policy !== 'pack') throw new UsageError(`invalid --policy '${policy}': spread or pack`);
  const needNone = () => {
    if (arg !== undefined) throw new UsageError(`unexpected argument '${arg}' for 'tsvisor fleet ${cmd}'`);
  };
  switch (cmd) {
    case 'hosts': {
      needNone();
      const hosts = expectOk(await call(t, 'GET', '/v1/fleet/hosts')) as Record<string, any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
      if (values.json) {
        json(hosts);
        return 0;
      }
      const rows: Row[] = [['HOST', 'STATE', 'CORES', 'BUDGET', 'ALLOCATED', 'VMS', 'LABELS', 'URL']];
      for (const h of hosts) {
        const state = !h.alive ? 'dead' : h.unschedulable ? 'drained' : 'ready';
        const labels = Object.entries((h.labels ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',') || '-';
        rows.push([h.name, state, h.cores === undefined ? '-' : String(h.cores), h.memoryBudgetMiB === undefined ? '-' : `${h.memoryBudgetMiB}M`, `${h.allocatedMiB}M`, String(h.allocatedVms), labels, h.url ?? '-']);
      }
      printTable(io, rows);
      return 0;
    }
    case 'vms': {
      needNone();
      const vms = expectOk(await call(t, 'GET', '/v1/fleet/vms')) as { name: string; host: string; state: string; memory: number; ha: boolean }[];
      if (values.json) {
        json(vms);
        return 0;
      }
      const rows: Row[] = [['NAME', 'HOST', 'STATE', 'MEMORY', 'HA']];
      for (const v of vms) rows.push([v.name, v.host, v.state, `${v.memory}M`, v.ha ? 'yes' : 'no']);
      printTable(io, rows);
      return 0;
    }
    case 'events': {
      needNone();
      const evs = expectOk(await call(t, 'GET', '/v1/fleet/events')) as { seq: number; time: string; kind: string; host: string; vm?: string; message: string }[];
      if (values.json) {
        json(evs);
        return 0;
      }
      for (const e of evs) io.stdout.write(`${e.time}  ${e.kind.padEnd(9)}  ${e.message}\n`);
      return 0;
    }
    case 'create': {
      let vm: Record<string, unknown> = {};
      if (values.config !== undefined) {
        try {
          vm = JSON.parse(readFileSync(values.config, 'utf8')) as Record<string, unknown>;
        } catch (e) {
          throw new UserError(`cannot read --config ${values.config}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      if (arg !== undefined) vm.name = arg;
      if (vm.name === undefined) throw new UsageError("'tsvisor fleet create' needs a VM name");
      if (values.kernel !== undefined) vm.kernel = values.kernel;
      if (vm.kernel === undefined) throw new UsageError("'tsvisor fleet create' needs --kernel FILE (a name in the hosts' images directory)");
      if (values.initrd !== undefined) vm.initrd = values.initrd;
      if (values.append !== undefined) vm.append = values.append;
      if (values.mem !== undefined || vm.memory === undefined) vm.memory = parseMemSize(values.mem ?? '512M');
      if (values.disk) vm.disks = values.disk.map(parseDiskSpec).map((d) => ({ path: d.path, format: d.format, readonly: d.readOnly || undefined, serial: d.serial }));
      if (values.ha) vm.ha = true;
      const labels: Record<string, string> = {};
      for (const l of values.label ?? []) {
        const m = /^([^=]+)=(.*)$/.exec(l);
        if (!m) throw new UsageError(`invalid --label '${l}': expected KEY=VALUE`);
        labels[m[1]!] = m[2]!;
      }
      const r = expectOk(await call(t, 'POST', '/v1/fleet/vms', { vm, policy, labels: values.label ? labels : undefined, start: values.start === true })) as { host: string };
      if (values.json) {
        json(r);
        return 0;
      }
      io.stdout.write(`${String(vm.name)}: placed on ${r.host}${values.start ? ' and started' : ''}\n`);
      return 0;
    }
    case 'drain': {
      if (arg === undefined) throw new UsageError("'tsvisor fleet drain' needs a host name");
      const path = `/v1/fleet/hosts/${encodeURIComponent(arg)}/drain`;
      expectOk(await call(t, 'POST', path, { policy }));
      let d = expectOk(await call(t, 'GET', path)) as { state: string; vms: { name: string; to: string | null; phase: string; error?: string }[] };
      while (values.wait && d.state === 'running') {
        await delay(500);
        d = expectOk(await call(t, 'GET', path)) as typeof d;
      }
      if (values.json) {
        json(d);
        return 0;
      }
      io.stdout.write(`${arg}: unschedulable; drain ${d.state}\n`);
      for (const v of d.vms) io.stdout.write(`  ${v.name.padEnd(20)} ${v.phase.padEnd(9)} ${v.to ?? '-'}${v.error ? `  ${v.error}` : ''}\n`);
      return d.state === 'incomplete' ? 1 : 0;
    }
    case 'undrain': {
      if (arg === undefined) throw new UsageError("'tsvisor fleet undrain' needs a host name");
      expectOk(await call(t, 'POST', `/v1/fleet/hosts/${encodeURIComponent(arg)}/undrain`));
      io.stdout.write(`${arg}: schedulable\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown fleet command '${cmd}' (hosts, vms, events, create, drain, undrain)`);
  }
}

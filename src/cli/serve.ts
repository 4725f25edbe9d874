// `tsvisor serve`: run the daemon in the foreground until SIGINT or SIGTERM.

import { cpus as hostCpus, totalmem } from 'node:os';
import { mkdirSync, readFileSync } from 'node:fs';
import type { FleetOptions } from '../host/fleet-member.js';
import { join, resolve } from 'node:path';
import { parseOptions, UsageError, UserError, type MainIo } from './args.js';
import { parseSize } from '../common/size.js';
import { defaultSocketPath, defaultStateDir } from './daemon-paths.js';

export const SERVE_HELP = `Usage: tsvisor serve [options]

Run the daemon that owns this host's VMs; its REST API (see /v1/openapi.json)
listens on a Unix socket (mode 0600), optionally also on TCP with a token.

Options:
  --socket PATH          Unix socket (default: $XDG_RUNTIME_DIR/tsvisor.sock,
                         or tsvisor.sock in the state directory)
  --listen HOST:PORT     also listen on TCP; every API request needs
                         "Authorization: Bearer <token>"; the web console
                         is at http://HOST:PORT/ui/
  --token-file FILE      file holding the token for --listen (16+ characters);
                         refused if group or others may read it
  --insecure-token-file  use a token file others may read anyway (with a warning)
  --max-console-clients N  console WebSocket clients per VM (default: 16)
  --state-dir DIR        VM definitions and console logs (default:
                         $TSVISOR_STATE_DIR or ~/.local/state/tsvisor)
  --images-dir DIR       kernels, initrds and disks VMs may use; nothing outside
                         it is accepted (default: STATE_DIR/images)
  --memory-budget SIZE   guest RAM all VMs may reserve (default: 75% of host RAM)
  --cpus N               host cores shared among VMs (default: cores - 1, at least 1)
  --hang-timeout SECS    a VM that reports no progress this long is failed (default: 30;
                         longer in proportion to the load average per core, up to 10x)
  --worker-heap SIZE     JS heap limit of each VM's worker thread (default: 1G); guest
                         RAM is not part of it
  --allow-hostfwd RULE   host addresses and ports VMs' hostfwd may listen on
                         (repeatable; default 127.0.0.1:*; "none" for none)
  --allow-guestfwd RULE  host addresses and ports VMs may connect to through
                         guestfwd or hostLoopback (repeatable; default none)
                         RULE is ADDR[/PREFIX]:PORTS, PORTS N, N-M or * (1024-65535);
                         ports below 1024 and 0.0.0.0 must be named explicitly;
                         the --listen port is never open to VMs
  --debug-faults         accept the "debug" create field (fault injection, for tests)

Fleet (docs/fleet.md): hosts that share an etcd act as one pool
  --fleet ENDPOINTS      join the fleet kept in etcd at ENDPOINTS (comma-separated
                         http(s)://HOST:PORT); needs --listen and --host-name
  --host-name NAME       this host's name in the fleet
  --advertise URL        where the other hosts reach this daemon's TCP API
                         (default: http://LISTEN_HOST:PORT)
  --fleet-token-file F   the TCP token every member accepts (default: --token-file;
                         all members must use the same one)
  --label KEY=VALUE      a label placement can pin VMs to (repeatable)
  --lease SECS           heartbeat lease: a host silent this long is dead (default 10)
  --etcd-prefix P        key prefix in etcd (default tsvisor/)
  --etcd-user USER       etcd authentication, with --etcd-password-file FILE
  --etcd-password-file FILE
  --etcd-ca FILE         TLS: the CA of etcd's certificate (PEM), and a client
  --etcd-cert FILE       certificate and key when etcd asks for one
  --etcd-key FILE
  -h, --help             show this help
`;

function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`invalid --listen '${s}': expected HOST:PORT, like 127.0.0.1:8080`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export async function serveCommand(args: string[], io: MainIo): Promise<number> {
  const { values } = parseOptions('tsvisor serve', args, {
    socket: { type: 'string' },
    listen: { type: 'string' },
    'token-file': { type: 'string' },
    'insecure-token-file': { type: 'boolean' },
    'max-console-clients': { type: 'string' },
    'state-dir': { type: 'string' },
    'images-dir': { type: 'string' },
    'memory-budget': { type: 'string' },
    cpus: { type: 'string' },
    'hang-timeout': { type: 'string' },
    'worker-heap': { type: 'string' },
    'debug-faults': { type: 'boolean' },
    'allow-hostfwd': { type: 'string', multiple: true },
    'allow-guestfwd': { type: 'string', multiple: true },
    fleet: { type: 'string' },
    'host-name': { type: 'string' },
    advertise: { type: 'string' },
    'fleet-token-file': { type: 'string' },
    label: { type: 'string', multiple: true },
    lease: { type: 'string' },
    'etcd-prefix': { type: 'string' },
    'etcd-user': { type: 'string' },
    'etcd-password-file': { type: 'string' },
    'etcd-ca': { type: 'string' },
    'etcd-cert': { type: 'string' },
    'etcd-key': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(SERVE_HELP);
    return 0;
  }
  if (values.listen !== undefined && values['token-file'] === undefined) {
    throw new UsageError('--listen needs --token-file: the TCP API is only served with a bearer token');
  }
  const listen = values.listen === undefined ? undefined : parseHostPort(values.listen);
  let token: string | undefined;
  if (values['token-file'] !== undefined) {
    const { readToken } = await import('../host/auth.js');
    try {
      token = readToken(values['token-file'], {
        insecure: values['insecure-token-file'] === true,
        warn: (m) => io.stderr.write(`tsvisor serve: ${m}\n`),
      });
    } catch (e) {
      throw new UserError(`cannot use the token file: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const stateDir = resolve(values['state-dir'] ?? defaultStateDir());
  const socketPath = resolve(values.socket ?? defaultSocketPath(values['state-dir'] === undefined ? undefined : stateDir));
  const imagesDir = resolve(values['images-dir'] ?? join(stateDir, 'images'));
  if (values['images-dir'] === undefined) mkdirSync(imagesDir, { recursive: true, mode: 0o700 });
  const cores = hostCpus().length;
  let cpus = Math.max(1, cores - 1);
  if (values.cpus !== undefined) {
    cpus = Number(values.cpus);
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 1024) throw new UsageError(`invalid --cpus '${values.cpus}': expected a whole number from 1`);
  }
  let memoryBudgetMiB = Math.floor((totalmem() * 0.75) / 1048576);
  if (values['memory-budget'] !== undefined) {
    const b = parseSize(values['memory-budget']);
    if (b === null || !Number.isFinite(b) || b < 1048576) throw new UsageError(`invalid --memory-budget '${values['memory-budget']}': expected a size like 8G`);
    memoryBudgetMiB = Math.floor(b / 1048576);
  }
  let hangTimeoutMs = 30_000;
  if (values['hang-timeout'] !== undefined) {
    const s = Number(values['hang-timeout']);
    if (!Number.isFinite(s) || s < 1) throw new UsageError(`invalid --hang-timeout '${values['hang-timeout']}': expected seconds, at least 1`);
    hangTimeoutMs = s * 1000;
  }

  let maxConsoleClients = 16;
  if (values['max-console-clients'] !== undefined) {
    maxConsoleClients = Number(values['max-console-clients']);
    if (!Number.isInteger(maxConsoleClients) || maxConsoleClients < 1 || maxConsoleClients > 1024) {
      throw new UsageError(`invalid --max-console-clients '${values['max-console-clients']}': expected a whole number from 1 to 1024`);
    }
  }

  let workerMaxHeapMiB = 1024;
  if (values['worker-heap'] !== undefined) {
    const b = parseSize(values['worker-heap']);
    if (b === null || !Number.isFinite(b) || b < 64 * 1048576) throw new UsageError(`invalid --worker-heap '${values['worker-heap']}': expected a size of at least 64M`);
    workerMaxHeapMiB = Math.floor(b / 1048576);
  }

  const { defaultNetPolicy, parsePolicyRules } = await import('../host/net-policy.js');
  const netPolicy = defaultNetPolicy();
  try {
    if (values['allow-hostfwd']) netPolicy.listen = parsePolicyRules('--allow-hostfwd', values['allow-hostfwd']);
    if (values['allow-guestfwd']) netPolicy.connect = parsePolicyRules('--allow-guestfwd', values['allow-guestfwd']);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }

  const fleet = values.fleet === undefined ? undefined : fleetOptions(values, token);

  const [{ startDaemon }, { defaultWasmPath }] = await Promise.all([import('../host/server.js'), import('../vm/vm-handle.js')]);
  const log = (m: string) => io.stderr.write(`tsvisor serve: ${m}\n`);
  let daemon;
  try {
    daemon = await startDaemon({
      socketPath,
      listen,
      token,
      stateDir,
      imagesDir,
      cpus,
      memoryBudgetMiB,
      wasmPath: defaultWasmPath(),
      debugFaults: values['debug-faults'] === true,
      hangTimeoutMs,
      schedulerPeriodMs: 50,
      logMaxBytes: 4 * 1024 * 1024,
      workerMaxHeapMiB,
      netPolicy,
      maxConsoleClients,
      fleet,
      version: process.env.npm_package_version ?? '0.1.0',
      log,
    });
  } catch (e) {
    throw new UserError(e instanceof Error ? e.message : String(e));
  }
  log(
    `listening on ${daemon.socketPath}${daemon.tcp ? ` and ${daemon.tcp.host}:${daemon.tcp.port}` : ''}; ` +
      `${cpus} CPU(s), memory budget ${memoryBudgetMiB} MiB, images in ${imagesDir}, ${daemon.host.vms.size} VM(s) defined; ` +
      (daemon.fleet ? `member '${daemon.fleet.name}' of the fleet at ${fleet!.endpoints.join(',')} (lease ${daemon.fleet.ttl} s); ` : '') +
      `VM hostfwd may listen on ${netPolicy.listen.join(' ') || 'nothing'}, VMs may connect to ${netPolicy.connect.join(' ') || 'nothing'} on the host`,
  );
  // Stay up until a signal, then stop the VMs and remove the socket.
  const sig = await new Promise<NodeJS.Signals>((res) => {
    process.once('SIGINT', () => res('SIGINT'));
    process.once('SIGTERM', () => res('SIGTERM'));
  });
  log(`${sig}: stopping VMs`);
  await daemon.close();
  return 0;
}

function readSecret(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new UserError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** --fleet and its companions, checked before anything starts. */
function fleetOptions(values: Record<string, string | boolean | string[] | undefined>, token: string | undefined): FleetOptions {
  const str = (k: string) => values[k] as string | undefined;
  const endpoints = str('fleet')!.split(',').map((e) => e.trim()).filter(Boolean);
  if (endpoints.length === 0 || endpoints.some((e) => !/^https?:\/\/[^\s/]+:\d{1,5}\/?$/.test(e))) {
    throw new UsageError(`invalid --fleet '${str('fleet')}': expected etcd endpoints like http://127.0.0.1:2379[,http://...]`);
  }
  if (values.listen === undefined) throw new UsageError('--fleet needs --listen: the other hosts reach this one through its TCP API');
  const hostName = str('host-name');
  if (hostName === undefined) throw new UsageError('--fleet needs --host-name NAME');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(hostName)) throw new UsageError(`invalid --host-name '${hostName}': letters, digits, _ . - (at most 63)`);
  const advertise = str('advertise') ?? '';
  if (advertise !== '' && !/^http:\/\/[^\s/]+:\d{1,5}\/?$/.test(advertise)) throw new UsageError(`invalid --advertise '${advertise}': expected http://HOST:PORT`);
  const fleetToken = str('fleet-token-file') !== undefined ? readSecret(str('fleet-token-file')!, 'the fleet token file') : token;
  if (!fleetToken) throw new UsageError('--fleet needs a token (--token-file or --fleet-token-file)');
  const labels: Record<string, string> = {};
  for (const l of (values.label as string[] | undefined) ?? []) {
    const m = /^([A-Za-z0-9_.-]{1,63})=([A-Za-z0-9_.-]{0,63})$/.exec(l);
    if (!m) throw new UsageError(`invalid --label '${l}': expected KEY=VALUE (letters, digits, _ . -)`);
    labels[m[1]!] = m[2]!;
  }
  let leaseSeconds = 10;
  if (str('lease') !== undefined) {
    leaseSeconds = Number(str('lease'));
    if (!Number.isInteger(leaseSeconds) || leaseSeconds < 2 || leaseSeconds > 600) throw new UsageError(`invalid --lease '${str('lease')}': whole seconds from 2 to 600`);
  }
  if ((str('etcd-cert') === undefined) !== (str('etcd-key') === undefined)) throw new UsageError('--etcd-cert and --etcd-key go together');
  if (str('etcd-cert') !== undefined && str('etcd-ca') === undefined) throw new UsageError('--etcd-cert needs --etcd-ca');
  if (str('etcd-password-file') !== undefined && str('etcd-user') === undefined) throw new UsageError('--etcd-password-file needs --etcd-user');
  // TLS: with --etcd-ca, or an https:// endpoint (then the system's CAs check etcd).
  if (str('etcd-ca') !== undefined || endpoints.some((e) => /^https:/i.test(e))) muteIpServerNameWarning();
  return {
    endpoints,
    hostName,
    advertise,
    token: fleetToken,
    labels,
    leaseSeconds,
    prefix: str('etcd-prefix'),
    username: str('etcd-user'),
    password: str('etcd-password-file') !== undefined ? readSecret(str('etcd-password-file')!, 'the etcd password file') : undefined,
    caFile: str('etcd-ca'),
    certFile: str('etcd-cert'),
    keyFile: str('etcd-key'),
  };
}

/**
 * The etcd client's gRPC layer gives Node's TLS the endpoint's address as the
 * server name; for an IP address (`--fleet https://10.0.0.9:2379`) Node
 * leaves it out of SNI and prints a deprecation warning (DEP0123) a user can
 * do nothing about. The certificate is still checked against that address.
 * Every other warning is printed as before.
 */
function muteIpServerNameWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === 'DEP0123') return;
    for (const p of printers) p.call(process, w);
  });
}

// The OpenAPI 3 description of the daemon's API, served at /v1/openapi.json.
// Request bodies reference the same schema objects validate.ts compiles.

import { cloneRequestSchema, createVmSchema, errorSchema, eventSchema, historySchema, imageSchema, migrateRequestSchema, migrationProgressSchema, patchVmSchema, snapshotSchema, SNAPSHOT_NAME_PATTERN, vmSchema, vmStatsSchema } from './schemas.js';

const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const err = (description: string) => ({ description, ...json({ $ref: '#/components/schemas/Error' }) });
const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: createVmSchema.properties.name.pattern } };
const snapParam = { name: 'snapshot', in: 'path', required: true, schema: { type: 'string', pattern: SNAPSHOT_NAME_PATTERN } };
const vmOk = { description: 'the VM', ...json({ $ref: '#/components/schemas/Vm' }) };

function action(summary: string) {
  return {
    post: {
      summary,
      parameters: [nameParam],
      responses: { '200': vmOk, '404': err('no such VM'), '409': err('the VM is not in a state that allows this') },
    },
  };
}

/** stop and reboot: an optional body with the seconds the guest has. */
function graceful(summary: string) {
  const a = action(summary);
  return {
    post: {
      ...a.post,
      requestBody: {
        required: false,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              additionalProperties: false,
              properties: { timeout: { type: 'integer', minimum: 0, maximum: 3600, description: 'seconds the guest has (default 30; 0 = at once)' } },
            },
          },
        },
      },
    },
  };
}

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.0.3',
    info: {
      title: 'tsvisor daemon API',
      version,
      description:
        'Manage the RISC-V VMs of one host. Errors are JSON objects {"error": "<field>: <problem>"}. ' +
        'Over TCP every request needs Authorization: Bearer <token> (except the web console files under /ui/).',
    },
    servers: [{ url: '/' }],
    components: {
      schemas: {
        CreateVm: createVmSchema,
        PatchVm: patchVmSchema,
        Vm: vmSchema,
        VmStats: vmStatsSchema,
        Snapshot: snapshotSchema,
        CloneRequest: cloneRequestSchema,
        MigrateRequest: migrateRequestSchema,
        MigrationProgress: migrationProgressSchema,
        Error: errorSchema,
        History: historySchema,
        Event: eventSchema,
        Image: imageSchema,
      },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/openapi.json': { get: { summary: 'this document', responses: { '200': { description: 'OpenAPI document' } } } },
      '/v1/vms': {
        get: { summary: 'list VMs', responses: { '200': { description: 'all VMs', ...json({ type: 'array', items: { $ref: '#/components/schemas/Vm' } }) } } },
        post: {
          summary: 'create a VM (stopped until started); its guest RAM is reserved against the memory budget',
          requestBody: { required: true, ...json({ $ref: '#/components/schemas/CreateVm' }) },
          responses: {
            '201': vmOk,
            '413': err('body larger than 1 MiB'),
            '415': err('a body that is not application/json (UTF-8)'),
            '507': err('no space left to store the definition'),
            '400': err('invalid body: unknown field, wrong type, out of range, bad name, path outside the images directory'),
            '409': err('a VM with this name exists, or the memory budget is exhausted'),
          },
        },
      },
      '/v1/vms/{name}': {
        get: { summary: 'inspect a VM', parameters: [nameParam], responses: { '200': vmOk, '404': err('no such VM') } },
        patch: {
          summary: 'change CPU weight or cap, disk and NIC limits (also while running), and the balloon target (running VMs)',
          parameters: [nameParam],
          requestBody: { required: true, ...json({ $ref: '#/components/schemas/PatchVm' }) },
          responses: { '200': vmOk, '400': err('invalid body'), '404': err('no such VM') },
        },
        delete: {
          summary: 'delete a VM, its definition and console log; releases its memory reservation',
          parameters: [nameParam, { name: 'force', in: 'query', schema: { type: 'boolean' }, description: 'kill it first if running' }],
          responses: { '204': { description: 'deleted (a broken VM: its kept-aside files too)' }, '404': err('no such VM'), '409': err('running (use ?force=true)') },
        },
      },
      '/v1/vms/{name}/start': action('start (boot) the VM'),
      '/v1/vms/{name}/pause': action('pause a running VM'),
      '/v1/vms/{name}/resume': action('resume a paused VM'),
      '/v1/vms/{name}/stop': graceful(
        'graceful stop: press the power button (virtio-input) and wait up to timeout seconds for the guest to power off, then stop it; ' +
        'a paused VM or a guest without a driver for the button is stopped at once',
      ),
      '/v1/vms/{name}/reboot': graceful(
        'graceful reboot: press the restart key (KEY_RESTART) and wait up to timeout seconds for the guest to reboot, then reset the machine',
      ),
      '/v1/vms/{name}/kill': action('terminate the VM at once'),
      '/v1/vms/{name}/restart': action('stop the running VM and start it again, as one operation'),
      '/v1/vms/{name}/console': {
        get: {
          summary: 'console over WebSocket: binary frames carry raw console bytes both ways; recent output is sent on attach',
          description:
            'Over TCP the token goes in the Authorization header, or (for browsers, which cannot set it) as the ' +
            'subprotocol tsvisor.bearer.<token as base64url> offered next to tsvisor.console, which the server then chooses. ' +
            'Bounds: a message over 64 KiB closes the socket with 1009; input the guest has not taken beyond 256 KiB closes it with 4001; ' +
            'a client with over 1 MiB of output unsent is closed with 4000. ' +
            'A text frame {"type": "resize", "cols": C, "rows": R} gives the size of the client\'s terminal (1..65535 each); the guest\'s hvc0 takes it (stty size).',
          parameters: [nameParam],
          responses: {
            '101': { description: 'switching protocols' },
            '401': err('over TCP: missing or wrong token'),
            '404': err('no such VM'),
            '409': err('not running'),
            '429': err('the VM has its maximum of console clients (--max-console-clients)'),
          },
        },
      },
      '/v1/vms/{name}/log': {
        get: {
          summary: 'console log (size-bounded; the previous rotated part first)',
          parameters: [nameParam],
          responses: { '200': { description: 'bytes', content: { 'application/octet-stream': {} } }, '404': err('no such VM') },
        },
      },
      '/v1/vms/{name}/snapshot': {
        put: {
          summary: 'snapshot the running VM into STATE_DIR/snapshots/DIR (new or empty); the VM goes on',
          parameters: [nameParam],
          requestBody: {
            required: true,
            ...json({
              type: 'object',
              additionalProperties: false,
              required: ['dir'],
              properties: {
                dir: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' },
                diskOverlay: { type: 'boolean', description: 'freeze the writable disks: the VM goes on writing a new qcow2 overlay (IMAGE.DIR.qcow2 next to each image, backed by it, format recorded), its definition names the overlay, and the snapshot keeps the image, which nothing writes any more' },
              },
            }),
          },
          responses: {
            '200': { description: 'written', ...json({ type: 'object', properties: { dir: { type: 'string' }, name: { type: 'string' }, instret: { type: 'integer' }, dataPages: { type: 'integer' }, ms: { type: 'number' }, overlays: { type: 'array', items: { type: 'object', properties: { disk: { type: 'integer' }, path: { type: 'string' } } }, description: 'with diskOverlay: the disks switched, and the overlays the VM now writes' } } }) },
            '400': err('bad name, or the snapshot failed (directory not empty, disk error)'),
            '404': err('no such VM'),
            '409': err('not running'),
          },
        },
      },
      '/v1/vms/{name}/migrate': {
        post: {
          summary: 'start a live migration of the running VM to another daemon (shared storage: its images at the same paths there); the answer is the first progress, follow it with GET',
          parameters: [nameParam],
          requestBody: { required: true, ...json({ $ref: '#/components/schemas/MigrateRequest' }) },
          responses: {
            '202': { description: 'started', ...json({ $ref: '#/components/schemas/MigrationProgress' }) },
            '400': err('invalid body'),
            '404': err('no such VM'),
            '409': err('not running, already migrating, or in its own process'),
          },
        },
        get: {
          summary: 'the progress of the VM\'s last migration from this daemon (readable after it ended, also when the VM left)',
          parameters: [nameParam],
          responses: { '200': { description: 'progress', ...json({ $ref: '#/components/schemas/MigrationProgress' }) }, '404': err('no migration of this VM') },
        },
        delete: {
          summary: 'cancel the running migration; the VM runs on here',
          parameters: [nameParam],
          responses: { '200': { description: 'the final progress', ...json({ $ref: '#/components/schemas/MigrationProgress' }) }, '409': err('not migrating, or already committing at the destination') },
        },
      },
      '/v1/snapshots': {
        get: { summary: 'list the snapshots in STATE_DIR/snapshots (an unreadable one is listed with its error)', responses: { '200': { description: 'snapshots', ...json({ type: 'array', items: { $ref: '#/components/schemas/Snapshot' } }) } } },
      },
      '/v1/snapshots/{snapshot}': {
        get: { summary: 'inspect a snapshot', parameters: [snapParam], responses: { '200': { description: 'the snapshot', ...json({ $ref: '#/components/schemas/Snapshot' }) }, '404': err('no such snapshot') } },
        delete: {
          summary: 'delete a snapshot (its directory; the disk images it names stay)',
          parameters: [snapParam],
          responses: { '204': { description: 'deleted' }, '404': err('no such snapshot'), '409': err('VMs are defined from it (usedBy): delete them first') },
        },
      },
      '/v1/snapshots/{snapshot}/clones': {
        post: {
          summary: 'define N clones of the snapshot (PREFIX-1 .. PREFIX-N) and start them: each restores the snapshot with a new VM generation ID, MACs derived from its name and qcow2 overlays over the writable disks (STATE_DIR/clones/NAME, made anew at each start); all or nothing',
          parameters: [snapParam],
          requestBody: { required: true, ...json({ $ref: '#/components/schemas/CloneRequest' }) },
          responses: {
            '201': { description: 'the clones', ...json({ type: 'object', properties: { snapshot: { type: 'string' }, vms: { type: 'array', items: { $ref: '#/components/schemas/Vm' } } } }) },
            '400': err('invalid body (count, prefix, a MAC given)'),
            '404': err('no such snapshot'),
            '409': err('a name is taken, the memory budget is too small for all of them, the snapshot is unreadable, or its disks are in use by a running VM'),
          },
        },
      },
      '/v1/vms/{name}/stats': {
        get: { summary: 'VM statistics', parameters: [nameParam], responses: { '200': { description: 'stats', ...json({ $ref: '#/components/schemas/VmStats' }) }, '404': err('no such VM') } },
      },
      '/v1/vms/{name}/history': {
        get: {
          summary: 'the VM\'s recent samples (default one hour every 2 s): CPU, MIPS, memory touched, disk and network throughput',
          parameters: [nameParam],
          responses: { '200': { description: 'columns', ...json({ $ref: '#/components/schemas/History' }) }, '404': err('no such VM') },
        },
      },
      '/v1/vms/{name}/events': {
        get: {
          summary: 'the VM\'s lifecycle events and failures, oldest first (the last 200)',
          parameters: [nameParam],
          responses: { '200': { description: 'events', ...json({ type: 'array', items: { $ref: '#/components/schemas/Event' } }) }, '404': err('no such VM') },
        },
      },
      '/v1/host/stats': { get: { summary: 'host totals', responses: { '200': { description: 'stats', ...json({ type: 'object' }) } } } },
      '/v1/host/history': { get: { summary: 'the sums over all VMs, sampled like a VM\'s history', responses: { '200': { description: 'columns', ...json({ $ref: '#/components/schemas/History' }) } } } },
      '/v1/host/events': { get: { summary: 'every event of the daemon and its VMs, oldest first (the last 1000; kept in STATE_DIR/events.jsonl across restarts)', responses: { '200': { description: 'events', ...json({ type: 'array', items: { $ref: '#/components/schemas/Event' } }) } } } },
      // The fleet (serve --fleet, docs/fleet.md); a daemon outside a fleet answers 404, an unreachable etcd 503.
      '/v1/fleet/hosts': { get: { summary: 'the fleet\'s hosts: live ones (capacity, allocation, drained) and dead ones still holding VMs', responses: { '200': { description: 'hosts', ...json({ type: 'array', items: { type: 'object' } }) }, '404': err('not in a fleet'), '503': err('etcd unreachable') } } },
      '/v1/fleet/vms': {
        get: { summary: 'every VM of the fleet: host, state, memory, ha', responses: { '200': { description: 'VM records', ...json({ type: 'array', items: { type: 'object' } }) } } },
        post: {
          summary: 'place a VM by policy (one etcd transaction) and create it on the chosen host',
          requestBody: { required: true, ...json({ type: 'object', additionalProperties: false, required: ['vm'], properties: { vm: { $ref: '#/components/schemas/CreateVm' }, policy: { type: 'string', enum: ['spread', 'pack'] }, labels: { type: 'object', additionalProperties: { type: 'string' } }, start: { type: 'boolean' } } }) },
          responses: { '201': { description: '{host, vm}', ...json({ type: 'object' }) }, '409': err('no host can take it, or the name exists in the fleet') },
        },
      },
      '/v1/fleet/vms/{name}/migrate': { post: { summary: 'live-migrate a VM of the fleet to a host (or one chosen by policy)', parameters: [nameParam], requestBody: { required: false, ...json({ type: 'object', additionalProperties: false, properties: { to: { type: 'string' }, policy: { type: 'string', enum: ['spread', 'pack'] } } }) }, responses: { '202': { description: '{from, to, progress}', ...json({ type: 'object' }) } } } },
      '/v1/fleet/hosts/{host}/drain': {
        post: { summary: 'drain a host: live-migrate its VMs away, mark it unschedulable', parameters: [{ name: 'host', in: 'path', required: true, schema: { type: 'string' } }], responses: { '202': { description: 'the drain record', ...json({ type: 'object' }) } } },
        get: { summary: 'the last drain\'s progress', parameters: [{ name: 'host', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': { description: 'the drain record', ...json({ type: 'object' }) } } },
      },
      '/v1/fleet/hosts/{host}/undrain': { post: { summary: 'make a host schedulable again', parameters: [{ name: 'host', in: 'path', required: true, schema: { type: 'string' } }], responses: { '200': { description: 'done', ...json({ type: 'object' }) } } } },
      '/v1/fleet/events': { get: { summary: 'the fleet\'s events (the last 1000, kept in etcd)', responses: { '200': { description: 'events', ...json({ type: 'array', items: { type: 'object' } }) } } } },
      '/v1/images': { get: { summary: 'regular files of the images directory (and one level of subdirectories), for choosing a kernel, initrd or disk', responses: { '200': { description: 'files', ...json({ type: 'array', items: { $ref: '#/components/schemas/Image' } }) } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text exposition format', content: { 'text/plain': {} } } } } },
    },
  };
}

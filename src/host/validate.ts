// Request validation: ajv compiles the schemas of schemas.ts (the ones the
// OpenAPI document shows), then checks that need the file system or the
// daemon's settings (paths inside the images directory, vcpus, cap vs --cpus).
// Every failure is one message that starts with the field it is about.

import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import type AjvClass from 'ajv';
import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { cloneRequestSchema, createVmSchema, patchVmSchema } from './schemas.js';
import type { CloneRequest, CreateVmRequest, PatchVmRequest } from './types.js';

// ajv ships CommonJS with a default export; under NodeNext the class sits on .default.
const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as typeof AjvClass.default;

/** A request the client got wrong: HTTP status and a message naming the field. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

// Unknown fields are rejected (not silently removed) and nothing is coerced:
// "512" is not a memory size, and a typo in a field name must not go unnoticed.
const ajv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: true });
const checkCreate = ajv.compile(createVmSchema as object);
const checkPatch = ajv.compile(patchVmSchema as object);
const checkClone = ajv.compile(cloneRequestSchema as object);

/** ajv's instancePath "/disks/0/path" as "disks[0].path". */
function fieldName(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function join2(a: string, b: string): string {
  return a ? `${a}.${b}` : b;
}

/** One readable line for ajv's first error. */
export function describeError(e: ErrorObject): string {
  const field = fieldName(e.instancePath);
  const p = e.params as Record<string, unknown>;
  const unit = /(^|\.)memory$/.test(field) ? ' MiB' : '';
  switch (e.keyword) {
    case 'additionalProperties':
      return `${join2(field, String(p.additionalProperty))}: unknown field`;
    case 'required':
      return `${join2(field, String(p.missingProperty))}: is required`;
    case 'type':
      return `${field || 'body'}: must be ${String(p.type).replace(',', ' or ')}`;
    case 'maximum':
      return `${field}: must be at most ${String(p.limit)}${unit}`;
    case 'minimum':
      return `${field}: must be at least ${String(p.limit)}${unit}`;
    case 'maxItems':
      return `${field}: at most ${String(p.limit)} entries`;
    case 'maxLength':
      return `${field}: at most ${String(p.limit)} characters`;
    case 'minLength':
      return `${field}: must not be empty`;
    case 'enum':
      return `${field}: must be one of ${(p.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      if (field === 'name') {
        return 'name: must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit (no path separators)';
      }
      return `${field}: has an invalid format`;
    case 'anyOf':
      return `${field}: must be a number or null`;
    default:
      return `${field || 'body'}: ${e.message ?? 'is invalid'}`;
  }
}

function run<T>(check: ValidateFunction, body: unknown): T {
  if (!check(body)) {
    const errors = check.errors ?? [];
    // With anyOf, the inner errors come first and say more than the anyOf itself.
    const first = errors.find((e) => e.keyword !== 'anyOf') ?? errors[0];
    throw new ApiError(400, first ? describeError(first) : 'body: is invalid');
  }
  return body as T;
}

export interface HostLimits {
  imagesDir: string;
  cpus: number;
  debugFaults: boolean;
}

/**
 * Resolve `p` (relative paths are taken inside the images directory), follow
 * symlinks, and require the result to be an existing regular file inside the
 * images directory.
 */
export function resolveImagePath(field: string, p: string, imagesDir: string): string {
  if (p.includes('\0')) throw new ApiError(400, `${field}: invalid path`);
  if (p.split(/[\\/]/).includes('..')) throw new ApiError(400, `${field}: ".." is not allowed in paths`);
  const root = realpathSync(imagesDir);
  const candidate = isAbsolute(p) ? p : join(root, p);
  let real: string;
  try {
    real = realpathSync(resolve(candidate));
  } catch {
    throw new ApiError(400, `${field}: file not found: ${p}`);
  }
  const rel = relative(root, real);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw new ApiError(400, `${field}: must be inside the images directory (${root})`);
  }
  if (!statSync(real).isFile()) throw new ApiError(400, `${field}: not a regular file: ${p}`);
  return real;
}

/** Validate a create body; returns it with paths resolved to real paths in the images directory. */
export function validateCreate(body: unknown, limits: HostLimits): CreateVmRequest {
  const req = run<CreateVmRequest>(checkCreate, body);
  if (req.vcpus !== undefined && req.cpus !== undefined && req.vcpus !== req.cpus) {
    throw new ApiError(400, 'vcpus: differs from cpus (give one of them)');
  }
  if (req.cpu?.cap !== undefined) checkCap(req.cpu.cap, req.cpus ?? req.vcpus ?? 1, limits);
  if (req.debug !== undefined && !limits.debugFaults) {
    throw new ApiError(400, 'debug: unknown field (fault injection needs the daemon started with --debug-faults)');
  }
  if (req.clone === true && req.snapshot === undefined) throw new ApiError(400, 'clone: needs snapshot (the snapshot to clone)');
  if (req.rootDisk === true && (req.disks?.length ?? 0) === 0) throw new ApiError(400, 'rootDisk: needs a disk in disks');
  const out: CreateVmRequest = structuredClone(req);
  out.kernel = resolveImagePath('kernel', out.kernel, limits.imagesDir);
  if (out.initrd !== undefined) out.initrd = resolveImagePath('initrd', out.initrd, limits.imagesDir);
  if (out.systemMap !== undefined) out.systemMap = resolveImagePath('systemMap', out.systemMap, limits.imagesDir);
  out.disks?.forEach((d, i) => {
    d.path = resolveImagePath(`disks[${i}].path`, d.path, limits.imagesDir);
  });
  return out;
}

export function validateClone(body: unknown, limits: HostLimits): CloneRequest {
  const req = run<CloneRequest>(checkClone, body);
  // The hart count comes from the snapshot: the registry checks the cap against it.
  if (req.cpu?.cap !== undefined) checkCap(req.cpu.cap, Infinity, limits);
  return req;
}

export function validatePatch(body: unknown, limits: HostLimits): PatchVmRequest {
  const req = run<PatchVmRequest>(checkPatch, body);
  // A cap is checked by the registry (checkCap), which knows the VM's hart count.
  void limits;
  return req;
}

/**
 * A CPU cap is in host cores, shared by all the VM's harts: at most one core per
 * hart and at most the daemon's --cpus. (Phase 1 runs every hart on one thread,
 * so a VM uses at most one core whatever its cap; docs/smp.md.)
 */
export function checkCap(cap: number, harts: number, limits: Pick<HostLimits, 'cpus'>): void {
  if (cap > harts) {
    throw new ApiError(400, `cpu.cap: ${cap} cores is more than the VM's ${harts} hart${harts === 1 ? '' : 's'} can use (at most one core per hart)`);
  }
  if (cap > limits.cpus) throw new ApiError(400, `cpu.cap: must be at most ${limits.cpus} (the daemon's --cpus)`);
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw new ApiError(400, 'body: a JSON object is required');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ApiError(400, `body: invalid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

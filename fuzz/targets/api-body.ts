// REST API request bodies (POST /v1/vms, PATCH /v1/vms/NAME): JSON parsing,
// schema validation, the checks against the images directory, and the NIC
// specs derived from a valid body. The only error allowed is ApiError (a 400
// naming the field), or an error value from nicSpecs.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nicSpecs, diskRateLimits, nicRateLimits } from '../../src/host/nics.js';
import { ApiError, parseJsonBody, validateCreate, validatePatch, type HostLimits } from '../../src/host/validate.js';
import { allowing, check } from '../lib/expect.js';

// An images directory with a kernel, a disk, a subdirectory and a link leading out of it.
const imagesDir = mkdtempSync(join(tmpdir(), 'tsvisor-fuzz-images-'));
writeFileSync(join(imagesDir, 'vmlinux'), 'kernel');
writeFileSync(join(imagesDir, 'disk.img'), new Uint8Array(512));
mkdirSync(join(imagesDir, 'sub'));
symlinkSync(tmpdir(), join(imagesDir, 'out'));
const limits: HostLimits = { imagesDir, cpus: 2, debugFaults: false };

export function fuzz(data: Buffer): void {
  const patch = data.length > 0 && (data[0] & 1) === 1;
  const text = data.subarray(1).toString('utf8');
  const body = allowing([ApiError], () => parseJsonBody(text));
  if (body === undefined) return;
  if (patch) {
    const p = allowing([ApiError], () => validatePatch(body, limits));
    if (p?.cpu !== undefined) check(p.cpu.cap === undefined || p.cpu.cap === null || p.cpu.cap <= limits.cpus, 'cap above --cpus accepted');
    return;
  }
  const req = allowing([ApiError], () => validateCreate(body, { ...limits, debugFaults: (data[0] & 2) === 2 }));
  if (req === undefined) return;
  check(req.kernel.startsWith(imagesDir), `kernel path ${req.kernel} outside the images directory`);
  for (const d of req.disks ?? []) {
    check(d.path.startsWith(imagesDir), `disk path ${d.path} outside the images directory`);
    diskRateLimits(d.limits);
  }
  for (const n of req.nics ?? []) nicRateLimits(n.limits);
  nicSpecs(req);
}

// `tsvisor image create` and `tsvisor image info`: make blank raw/qcow2 disks and
// qcow2 overlays, and describe a disk (format, sizes, backing chain).
// Loaded on demand by main.ts; every user mistake is a one-line UserError.

import { closeSync, existsSync, ftruncateSync, openSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve as resolvePath } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { formatSize, parseSize } from '../common/size.js';
import { UsageError, UserError, type MainIo } from './args.js';
import { createQcow2, openQcow2, probeQcow2, resolveBackingPath, type Qcow2Image } from '../storage/qcow2.js';

export const IMAGE_CREATE_HELP = `Usage: tsvisor image create [options] PATH

Create a blank disk image, or a qcow2 overlay on a backing file.

Options:
  --format raw|qcow2            image format (default: raw; qcow2 with --backing)
  --size SIZE                   virtual size, e.g. 10G (default with --backing: the backing file's)
  --backing FILE                make a copy-on-write overlay of FILE (qcow2 only)
  --backing-format raw|qcow2    format of FILE (default: detected)
  --cluster-size SIZE           qcow2 cluster size, 512..2M, a power of two (default: 64K)
  -h, --help                    show this help
`;

export const IMAGE_INFO_HELP = `Usage: tsvisor image info PATH

Show a disk image's format, virtual size, allocation and backing chain.
`;

type Format = 'raw' | 'qcow2';

function parse<T extends NonNullable<ParseArgsConfig['options']>>(command: string, args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (e) {
    const msg = String((e as Error).message ?? e).split('\n')[0];
    throw new UsageError(`${command}: ${msg}`);
  }
}

function checkFormat(value: string, option: string): Format {
  if (value !== 'raw' && value !== 'qcow2') throw new UsageError(`invalid ${option} '${value}': expected raw or qcow2`);
  return value;
}

function diskError(e: unknown, path: string): never {
  if (e instanceof UserError) throw e;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') throw new UserError(`image file not found: ${path}`);
  const msg = e instanceof Error ? e.message : String(e);
  throw new UserError(`${path}: ${msg.split('\n')[0]}`);
}

function detect(path: string): Format {
  try {
    if (statSync(path).isDirectory()) throw new UserError(`${path} is a directory, not an image`);
    return probeQcow2(path) ? 'qcow2' : 'raw';
  } catch (e) {
    diskError(e, path);
  }
}

/** Virtual size of an existing image. */
function virtualSize(path: string, format: Format): number {
  try {
    if (format === 'raw') return statSync(path).size;
    const img = openQcow2(path, { readOnly: true });
    const size = img.size;
    img.close();
    return size;
  } catch (e) {
    diskError(e, path);
  }
}

export async function imageCreate(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parse('tsvisor image create', args, {
    format: { type: 'string' },
    size: { type: 'string' },
    backing: { type: 'string' },
    'backing-format': { type: 'string' },
    'cluster-size': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout.write(IMAGE_CREATE_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError("'tsvisor image create' needs the path of the image to create");
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' for 'tsvisor image create'`);
  const path = positionals[0];
  const backing = values.backing as string | undefined;
  const format: Format = values.format !== undefined ? checkFormat(values.format as string, '--format') : backing !== undefined ? 'qcow2' : 'raw';
  if (format === 'raw' && backing !== undefined) throw new UsageError('a raw image cannot have a backing file (use --format qcow2)');
  if (values['backing-format'] !== undefined && backing === undefined) throw new UsageError('--backing-format needs --backing');
  if (values['cluster-size'] !== undefined && format !== 'qcow2') throw new UsageError('--cluster-size applies to qcow2 images only');

  let clusterBits: number | undefined;
  if (values['cluster-size'] !== undefined) {
    const cs = parseSize(values['cluster-size'] as string);
    if (cs === null || cs < 512 || cs > 2 * 1024 * 1024 || (cs & (cs - 1)) !== 0) {
      throw new UsageError(`invalid --cluster-size '${values['cluster-size']}': expected a power of two from 512 to 2M`);
    }
    clusterBits = Math.log2(cs);
  }

  let size: number | undefined;
  if (values.size !== undefined) {
    const s = parseSize(values.size as string);
    if (s === null || !Number.isSafeInteger(s) || s <= 0) throw new UsageError(`invalid --size '${values.size}': expected a size like 10G or 512M`);
    if (s > 2 ** 50) throw new UsageError(`--size ${values.size} is too large (maximum 1024T)`);
    size = s;
  }

  let backingName: string | undefined;
  let backingFormat: Format | undefined;
  if (backing !== undefined) {
    if (backing === '') throw new UsageError('--backing needs a file name');
    // Relative names are stored relative to the overlay's directory (how qcow2 resolves them).
    const backingAbs = resolvePath(backing);
    if (!existsSync(backingAbs)) throw new UserError(`backing file not found: ${backing}`);
    backingFormat = values['backing-format'] !== undefined ? checkFormat(values['backing-format'] as string, '--backing-format') : detect(backingAbs);
    const vsize = virtualSize(backingAbs, backingFormat);
    size ??= vsize;
    backingName = isAbsolute(backing) ? backing : relative(dirname(resolvePath(path)), backingAbs);
  }
  if (size === undefined) throw new UsageError("'tsvisor image create' needs --size (or --backing)");
  if (existsSync(path)) throw new UserError(`${path} already exists (not overwriting it)`);

  try {
    if (format === 'raw') {
      const fd = openSync(path, 'wx');
      try {
        ftruncateSync(fd, size);
      } finally {
        closeSync(fd);
      }
    } else {
      createQcow2(path, { size, clusterBits, backing: backingName, backingFormat });
    }
  } catch (e) {
    diskError(e, path);
  }
  const extra = backing !== undefined ? `, backing ${backingName} (${backingFormat})` : '';
  io.stdout.write(`created ${path}: ${format}, ${formatSize(size)} (${size} bytes)${extra}\n`);
  return 0;
}

interface Layer {
  path: string;
  format: Format;
  size: number;
  diskSize: number;
  version?: number;
  clusterSize?: number;
  allocated?: number;
  backing?: string;
  backingFormat?: string;
}

function describe(path: string, format: Format): { layer: Layer; img?: Qcow2Image } {
  const st = statSync(path);
  const diskSize = st.blocks * 512;
  if (format === 'raw') return { layer: { path, format, size: st.size, diskSize } };
  const img = openQcow2(path, { readOnly: true });
  const h = img.header;
  return {
    img,
    layer: {
      path, format, size: img.size, diskSize, version: h.version, clusterSize: h.clusterSize,
      allocated: img.allocatedClusters() * h.clusterSize, backing: h.backingFile, backingFormat: h.backingFormat,
    },
  };
}

export async function imageInfo(args: string[], io: MainIo): Promise<number> {
  const { values, positionals } = parse('tsvisor image info', args, { help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    io.stdout.write(IMAGE_INFO_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError("'tsvisor image info' needs the path of an image");
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}' for 'tsvisor image info'`);
  const path = positionals[0];
  const chain: Layer[] = [];
  let cur: { path: string; format: Format } | undefined = { path, format: detect(path) };
  while (cur) {
    if (chain.length > 16) throw new UserError(`${path}: backing chain deeper than 16 (a loop?)`);
    let d: { layer: Layer; img?: Qcow2Image };
    try {
      d = describe(cur.path, cur.format);
    } catch (e) {
      diskError(e, cur.path);
    }
    d.img?.close();
    chain.push(d.layer);
    const l = d.layer;
    if (l.backing === undefined) break;
    const next = resolveBackingPath(l.path, l.backing);
    const fmt: Format = l.backingFormat === 'raw' || l.backingFormat === 'qcow2' ? l.backingFormat : detect(next);
    cur = { path: next, format: fmt };
  }
  const top = chain[0];
  const out: string[] = [];
  out.push(`image: ${path}`);
  out.push(`format: ${top.format}${top.version !== undefined ? ` (version ${top.version})` : ''}`);
  out.push(`virtual size: ${formatSize(top.size)} (${top.size} bytes)`);
  out.push(`disk size: ${top.diskSize} bytes`);
  if (top.format === 'qcow2') {
    out.push(`allocated: ${top.allocated} bytes (in this layer)`);
    out.push(`cluster size: ${top.clusterSize}`);
  }
  if (top.backing !== undefined) {
    out.push(`backing file: ${top.backing}${top.backingFormat ? ` (format ${top.backingFormat})` : ''}`);
    out.push('backing chain:');
    chain.forEach((l, i) => out.push(`  ${i}: ${l.path} (${l.format}, ${formatSize(l.size)})`));
  }
  io.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

// qcow2 header: parsing with full validation, and serialising a fresh header.
// Layout facts follow QEMU's docs/interop/qcow2.txt (all fields big-endian).
// Every problem is an Error with a one-line message that starts with "qcow2: ".

import { DiskError } from './backend.js';

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const V2_HEADER_LENGTH = 72;
export const V3_HEADER_LENGTH = 104;
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** Largest L1 table accepted (as QEMU: 32 MiB). */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
/** Largest refcount table accepted (as QEMU: 8 MiB). */
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
/** Largest backing file name accepted. */
export const MAX_BACKING_NAME = 1023;

// Incompatible feature bits.
export const INCOMPAT_DIRTY = 1 << 0;
export const INCOMPAT_CORRUPT = 1 << 1;
export const INCOMPAT_DATA_FILE = 1 << 2;
export const INCOMPAT_COMPRESSION = 1 << 3;
export const INCOMPAT_EXTL2 = 1 << 4;
export const COMPAT_LAZY_REFCOUNTS = 1 << 0;

// Header extension types.
export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_DATA_FILE = 0x44415441;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_BITMAPS = 0x23852875;

// Header field offsets.
export const OFF_BACKING_OFFSET = 8;
export const OFF_REFTABLE_OFFSET = 48;
export const OFF_INCOMPAT = 72;
export const OFF_AUTOCLEAR = 88;

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1Offset: number;
  refTableOffset: number;
  refTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatible: number; // low 32 bits (higher bits are refused as unknown)
  compatible: number;
  autoclear: number;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  backingFile?: string;
  backingFormat?: string;
  /** Names from the feature name table: "incompatible:5" -> name. */
  featureNames: Map<string, string>;
}

const hex = (n: number) => `0x${n.toString(16)}`;

function fail(msg: string): never {
  throw new DiskError(`qcow2: ${msg}`);
}

/** Read a big-endian u64 as a number; fail when it does not fit in 53 bits. */
export function u64(dv: DataView, off: number, what: string): number {
  const hi = dv.getUint32(off);
  const lo = dv.getUint32(off + 4);
  if (hi >= 0x200000) fail(`${what} ${hex(hi)}${lo.toString(16).padStart(8, '0')} is too large`);
  return hi * 0x1_0000_0000 + lo;
}

export function putU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, Math.floor(v / 0x1_0000_0000));
  dv.setUint32(off + 4, v >>> 0);
}

/** Does this buffer start with the qcow2 magic? */
export function isQcow2Magic(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0) === QCOW2_MAGIC;
}

const KNOWN_INCOMPAT_NAMES: Record<number, string> = {
  0: 'dirty bit',
  1: 'corrupt bit',
  2: 'external data file',
  3: 'compression type',
  4: 'extended L2 entries',
};

/**
 * Parse and validate the header found in `head` (the file's first bytes: at least
 * the first cluster, or the whole file if it is shorter) for a file of `fileSize` bytes.
 * Refuses what this implementation cannot handle safely.
 */
export function parseHeader(head: Uint8Array, fileSize: number): Qcow2Header {
  if (head.length < 4 || fileSize < 4) fail(`truncated header (file is ${fileSize} bytes)`);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(0) !== QCOW2_MAGIC) fail('not a qcow2 image (bad magic)');
  if (head.length < 8) fail(`truncated header (file is ${fileSize} bytes)`);
  const version = dv.getUint32(4);
  if (version !== 2 && version !== 3) fail(`unsupported version ${version} (only 2 and 3)`);
  const minLen = version === 2 ? V2_HEADER_LENGTH : V3_HEADER_LENGTH;
  if (head.length < minLen || fileSize < minLen) fail(`truncated header (file is ${fileSize} bytes, header needs ${minLen})`);

  const clusterBits = dv.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    fail(`cluster_bits ${clusterBits} out of range (${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS})`);
  }
  const clusterSize = 2 ** clusterBits;

  let incompatible = 0;
  let compatible = 0;
  let autoclear = 0;
  let refcountOrder = 4;
  let headerLength = V2_HEADER_LENGTH;
  let compressionType = 0;
  if (version === 3) {
    const incHi = dv.getUint32(OFF_INCOMPAT);
    incompatible = dv.getUint32(OFF_INCOMPAT + 4);
    compatible = dv.getUint32(84);
    autoclear = dv.getUint32(92);
    refcountOrder = dv.getUint32(96);
    headerLength = dv.getUint32(100);
    if (headerLength < V3_HEADER_LENGTH) fail(`header_length ${headerLength} is smaller than ${V3_HEADER_LENGTH}`);
    if (headerLength % 8 !== 0) fail(`header_length ${headerLength} is not a multiple of 8`);
    if (headerLength > clusterSize) fail(`header_length ${headerLength} is larger than a cluster`);
    if (headerLength > head.length || headerLength > fileSize) fail(`truncated header (file is ${fileSize} bytes, header_length ${headerLength})`);
    if (headerLength > V3_HEADER_LENGTH) compressionType = head[104];
    if (incHi !== 0) fail(`unknown incompatible feature bit(s) ${hex(incHi)} in the high word`);
  }
  if (refcountOrder > 6) fail(`refcount_order ${refcountOrder} out of range (0..6)`);

  // Header extensions (only v3 has room before them; v2 images may carry them after 72 bytes too).
  const featureNames = new Map<string, string>();
  let backingFormat: string | undefined;
  const backingOffset = u64(dv, OFF_BACKING_OFFSET, 'backing file offset');
  const backingSize = dv.getUint32(16);
  const extLimit = Math.min(clusterSize, head.length, fileSize, backingOffset !== 0 ? backingOffset : Infinity);
  let extOff = headerLength;
  let extCount = 0;
  while (extOff + 8 <= extLimit) {
    const type = dv.getUint32(extOff);
    const len = dv.getUint32(extOff + 4);
    if (type === EXT_END) break;
    if (++extCount > 1024) fail('too many header extensions');
    const dataOff = extOff + 8;
    if (len > extLimit - dataOff) fail(`header extension ${hex(type)} at ${hex(extOff)} extends past the header cluster`);
    const data = head.subarray(dataOff, dataOff + len);
    if (type === EXT_BACKING_FORMAT) {
      backingFormat = new TextDecoder().decode(data).replace(/\0+$/, '');
    } else if (type === EXT_FEATURE_TABLE) {
      for (let i = 0; i + 48 <= len; i += 48) {
        const ftype = data[i];
        const bit = data[i + 1];
        const raw = data.subarray(i + 2, i + 48);
        const nul = raw.indexOf(0);
        const name = new TextDecoder().decode(nul < 0 ? raw : raw.subarray(0, nul)).replace(/[^\x20-\x7e]/g, '?');
        const kind = ftype === 0 ? 'incompatible' : ftype === 1 ? 'compatible' : 'autoclear';
        featureNames.set(`${kind}:${bit}`, name);
      }
    } else if (type === EXT_DATA_FILE) {
      fail('external data file is not supported');
    } else if (type === EXT_CRYPTO) {
      fail('encrypted images are not supported');
    }
    // Unknown extensions (and bitmaps) are ignored.
    extOff = dataOff + Math.ceil(len / 8) * 8;
  }

  // Incompatible features.
  if (incompatible & INCOMPAT_CORRUPT) fail('image is marked corrupt (repair it with qemu-img check -r all)');
  if (incompatible & INCOMPAT_DATA_FILE) fail('external data file is not supported');
  if (incompatible & INCOMPAT_EXTL2) fail('extended L2 entries (subclusters) are not supported');
  if (incompatible & INCOMPAT_COMPRESSION) {
    if (compressionType === 1) fail('zstd compression is not supported (only zlib)');
    if (compressionType !== 0) fail(`unknown compression type ${compressionType}`);
  } else if (compressionType !== 0) {
    fail(`compression type ${compressionType} set without the compression type feature bit`);
  }
  const unknown = incompatible & ~0x1f;
  if (unknown !== 0) {
    const bit = 31 - Math.clz32(unknown & -unknown);
    const name = featureNames.get(`incompatible:${bit}`);
    fail(`unknown incompatible feature bit ${bit}${name ? ` (${name})` : ''}`);
  }

  const cryptMethod = dv.getUint32(32);
  if (cryptMethod !== 0) fail(`encrypted images are not supported (crypt_method ${cryptMethod}: ${cryptMethod === 1 ? 'AES' : cryptMethod === 2 ? 'LUKS' : 'unknown'})`);

  const size = u64(dv, 24, 'virtual size');

  // Backing file name: must lie in the first cluster.
  let backingFile: string | undefined;
  if (backingOffset !== 0) {
    if (backingSize === 0 || backingSize > MAX_BACKING_NAME) fail(`backing file name length ${backingSize} out of range (1..${MAX_BACKING_NAME})`);
    if (backingOffset < headerLength || backingOffset + backingSize > clusterSize) fail(`backing file name at ${hex(backingOffset)} is outside the header cluster`);
    if (backingOffset + backingSize > fileSize || backingOffset + backingSize > head.length) fail(`backing file name at ${hex(backingOffset)} extends past end of file`);
    backingFile = new TextDecoder().decode(head.subarray(backingOffset, backingOffset + backingSize));
    if (backingFile.includes('\0')) fail('backing file name contains a NUL byte');
  }
  if (backingFormat !== undefined && backingFile === undefined) backingFormat = undefined;

  // L1 table.
  const l1Size = dv.getUint32(36);
  const l1Offset = u64(dv, 40, 'L1 table offset');
  const l2Entries = clusterSize / 8;
  const needL1 = Math.ceil(size / (clusterSize * l2Entries));
  if (l1Size < needL1) fail(`L1 table too small for the virtual size (${l1Size} entries, need ${needL1})`);
  if (l1Size * 8 > MAX_L1_BYTES) fail(`L1 table too large (${l1Size} entries)`);
  if (l1Size > 0) {
    if (l1Offset % clusterSize !== 0) fail(`L1 table offset ${hex(l1Offset)} is not cluster aligned`);
    if (l1Offset === 0) fail('L1 table offset is 0 (overlaps the header)');
    if (l1Offset + l1Size * 8 > fileSize) fail(`L1 table at ${hex(l1Offset)} extends past end of file`);
  }

  // Refcount table.
  const refTableOffset = u64(dv, OFF_REFTABLE_OFFSET, 'refcount table offset');
  const refTableClusters = dv.getUint32(56);
  if (refTableClusters === 0) fail('refcount table has 0 clusters');
  if (refTableClusters * clusterSize > MAX_REFTABLE_BYTES) fail(`refcount table too large (${refTableClusters} clusters)`);
  if (refTableOffset % clusterSize !== 0 || refTableOffset === 0) fail(`refcount table offset ${hex(refTableOffset)} is not a valid cluster offset`);
  if (refTableOffset + refTableClusters * clusterSize > fileSize) fail(`refcount table at ${hex(refTableOffset)} extends past end of file`);

  // Snapshots: only their table placement is checked (they are never read).
  const nbSnapshots = dv.getUint32(60);
  const snapshotsOffset = u64(dv, 64, 'snapshot table offset');
  if (nbSnapshots > 65536) fail(`too many snapshots (${nbSnapshots})`);
  if (nbSnapshots > 0 && (snapshotsOffset % clusterSize !== 0 || snapshotsOffset === 0 || snapshotsOffset >= fileSize)) {
    fail(`snapshot table at ${hex(snapshotsOffset)} is outside the file or not cluster aligned`);
  }

  return {
    version, clusterBits, clusterSize, size, cryptMethod, l1Size, l1Offset, refTableOffset, refTableClusters,
    nbSnapshots, snapshotsOffset, incompatible, compatible, autoclear, refcountOrder, headerLength, compressionType,
    backingFile, backingFormat, featureNames,
  };
}

export interface NewHeader {
  clusterBits: number;
  size: number;
  l1Size: number;
  l1Offset: number;
  refTableOffset: number;
  refTableClusters: number;
  backingFile?: string;
  backingFormat?: string;
}

/** Serialise a version 3 header (refcount_order 4) with its extensions into one cluster. */
export function buildHeader(h: NewHeader): Uint8Array {
  const cs = 2 ** h.clusterBits;
  const buf = new Uint8Array(cs);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, QCOW2_MAGIC);
  dv.setUint32(4, 3);
  dv.setUint32(20, h.clusterBits);
  putU64(dv, 24, h.size);
  dv.setUint32(36, h.l1Size);
  putU64(dv, 40, h.l1Offset);
  putU64(dv, 48, h.refTableOffset);
  dv.setUint32(56, h.refTableClusters);
  dv.setUint32(96, 4);
  const headerLength = 112; // includes the compression type byte (0 = zlib) and padding
  dv.setUint32(100, headerLength);
  let off = headerLength;
  const enc = new TextEncoder();
  if (h.backingFile !== undefined && h.backingFormat !== undefined) {
    const fmt = enc.encode(h.backingFormat);
    dv.setUint32(off, EXT_BACKING_FORMAT);
    dv.setUint32(off + 4, fmt.length);
    buf.set(fmt, off + 8);
    off += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  // Feature name table for the bits QEMU knows, so its error messages are readable.
  const features: Array<[number, number, string]> = [
    [0, 0, 'dirty bit'], [0, 1, 'corrupt bit'], [0, 2, 'external data file'], [0, 3, 'compression type'],
    [0, 4, 'extended L2 entries'], [1, 0, 'lazy refcounts'], [2, 0, 'bitmaps'], [2, 1, 'raw external data'],
  ];
  dv.setUint32(off, EXT_FEATURE_TABLE);
  dv.setUint32(off + 4, features.length * 48);
  off += 8;
  for (const [type, bit, name] of features) {
    buf[off] = type;
    buf[off + 1] = bit;
    buf.set(enc.encode(name), off + 2);
    off += 48;
  }
  off += 8; // end-of-extensions marker (type 0, length 0)
  if (h.backingFile !== undefined) {
    const name = enc.encode(h.backingFile);
    if (name.length === 0 || name.length > MAX_BACKING_NAME) fail(`backing file name length ${name.length} out of range (1..${MAX_BACKING_NAME})`);
    if (off + name.length > cs) fail('backing file name does not fit in the header cluster');
    putU64(dv, OFF_BACKING_OFFSET, off);
    dv.setUint32(16, name.length);
    buf.set(name, off);
  }
  return buf;
}

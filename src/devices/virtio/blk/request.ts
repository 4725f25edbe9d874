// virtio-blk requests (virtio 1.2, section 5.2.6): a validated chain becomes a
// typed request. Protocol violations (no room for a header or status byte) are
// errors that make the device need a reset; requests that are well formed but
// cannot be served (past the end of the disk, unknown type) get a status byte.

import type { Chain } from '../queue.js';
import { gather } from '../queue.js';
import type { GuestMemory } from '../memory.js';

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const SECTOR_SIZE = 512;
export const HEADER_SIZE = 16; // type u32, reserved u32, sector u64
export const SEGMENT_SIZE = 16; // discard / write-zeroes: sector u64, num_sectors u32, flags u32
export const VIRTIO_BLK_ID_BYTES = 20;
export const WRITE_ZEROES_FLAG_UNMAP = 1;

export interface Segment {
  sector: number;
  sectors: number;
  flags: number;
}

/** A request as the device serves it. Data offsets are relative to the chain's readable/writable byte streams. */
export type BlkRequest =
  | { type: 'in'; sector: number; len: number }
  | { type: 'out'; sector: number; len: number }
  | { type: 'flush' }
  | { type: 'get-id'; len: number }
  | { type: 'discard'; segments: Segment[] }
  | { type: 'write-zeroes'; segments: Segment[] }
  /** Well formed but not served: answer with this status. */
  | { type: 'reject'; status: number; why: string };

export type ParseResult = { ok: true; req: BlkRequest } | { ok: false; error: string };

export interface ParseLimits {
  /** Disk size in sectors. */
  capacity: number;
  maxDiscardSectors: number;
  maxDiscardSeg: number;
  maxWriteZeroesSectors: number;
  maxWriteZeroesSeg: number;
}

function rangeOk(sector: number, sectors: number, capacity: number): boolean {
  return sector <= capacity && sectors <= capacity - sector;
}

export function parseRequest(mem: GuestMemory, chain: Chain, limits: ParseLimits): ParseResult {
  if (chain.readLen < HEADER_SIZE) return { ok: false, error: `request header is ${chain.readLen} bytes (needs ${HEADER_SIZE})` };
  if (chain.writeLen < 1) return { ok: false, error: 'request has no writable status byte' };
  const hdr = new Uint8Array(HEADER_SIZE);
  gather(mem, chain.readable, 0, hdr);
  const dv = new DataView(hdr.buffer);
  const type = dv.getUint32(0, true);
  const hi = dv.getUint32(12, true);
  // Sectors beyond 2^53 are far past any capacity: keep them as a huge number.
  const sector = hi * 0x1_0000_0000 + dv.getUint32(8, true);
  const { capacity } = limits;
  const dataIn = chain.writeLen - 1; // bytes for the device to write before the status
  const dataOut = chain.readLen - HEADER_SIZE; // bytes the driver gave after the header
  switch (type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const len = type === VIRTIO_BLK_T_IN ? dataIn : dataOut;
      if (len % SECTOR_SIZE !== 0) return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_IOERR, why: `data length ${len} is not a multiple of ${SECTOR_SIZE}` } };
      if (!rangeOk(sector, len / SECTOR_SIZE, capacity)) {
        return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_IOERR, why: `sectors ${sector}+${len / SECTOR_SIZE} are past the end of the disk (${capacity})` } };
      }
      return { ok: true, req: { type: type === VIRTIO_BLK_T_IN ? 'in' : 'out', sector, len } };
    }
    case VIRTIO_BLK_T_FLUSH:
      return { ok: true, req: { type: 'flush' } };
    case VIRTIO_BLK_T_GET_ID:
      return { ok: true, req: { type: 'get-id', len: Math.min(dataIn, VIRTIO_BLK_ID_BYTES) } };
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const discard = type === VIRTIO_BLK_T_DISCARD;
      if (dataOut === 0 || dataOut % SEGMENT_SIZE !== 0) {
        return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_UNSUPP, why: `segment list of ${dataOut} bytes` } };
      }
      const n = dataOut / SEGMENT_SIZE;
      const maxSeg = discard ? limits.maxDiscardSeg : limits.maxWriteZeroesSeg;
      const maxSectors = discard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors;
      if (n > maxSeg) return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_UNSUPP, why: `${n} segments (at most ${maxSeg})` } };
      const raw = new Uint8Array(dataOut);
      gather(mem, chain.readable, HEADER_SIZE, raw);
      const sv = new DataView(raw.buffer);
      const segments: Segment[] = [];
      for (let i = 0; i < n; i++) {
        const o = i * SEGMENT_SIZE;
        const s = sv.getUint32(o + 4, true) * 0x1_0000_0000 + sv.getUint32(o, true);
        const count = sv.getUint32(o + 8, true);
        const flags = sv.getUint32(o + 12, true);
        // Unknown flags, or unmap on a discard, are not supported (spec: UNSUPP).
        const allowed = discard ? 0 : WRITE_ZEROES_FLAG_UNMAP;
        if (flags & ~allowed) return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_UNSUPP, why: `segment flags 0x${flags.toString(16)}` } };
        if (count > maxSectors) return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_UNSUPP, why: `segment of ${count} sectors (at most ${maxSectors})` } };
        if (!rangeOk(s, count, capacity)) return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_IOERR, why: `sectors ${s}+${count} are past the end of the disk` } };
        segments.push({ sector: s, sectors: count, flags });
      }
      return { ok: true, req: { type: discard ? 'discard' : 'write-zeroes', segments } };
    }
    default:
      return { ok: true, req: { type: 'reject', status: VIRTIO_BLK_S_UNSUPP, why: `request type ${type}` } };
  }
}

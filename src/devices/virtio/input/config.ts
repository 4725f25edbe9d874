// The config space of virtio-input (virtio 1.2, 5.8.4): the driver writes
// `select` and `subsel`, then reads `size` and the union at offset 8, which
// shows the one item selected (the device's name, serial, ids, or the bitmap
// of the codes it sends for one event type).
//
//   0 select u8 | 1 subsel u8 | 2 size u8 | 3..7 reserved | 8..135 union (128 bytes)

export const CFG_UNSET = 0x00;
export const CFG_ID_NAME = 0x01;
export const CFG_ID_SERIAL = 0x02;
export const CFG_ID_DEVIDS = 0x03;
export const CFG_PROP_BITS = 0x10;
export const CFG_EV_BITS = 0x11;
export const CFG_ABS_INFO = 0x12;

export const CFG_UNION_OFFSET = 8;
export const CFG_UNION_BYTES = 128;
export const CFG_BYTES = CFG_UNION_OFFSET + CFG_UNION_BYTES;

const EV_KEY = 0x01;

export interface InputIdentity {
  /** At most 128 bytes of ASCII. */
  name: string;
  serial: string;
  devids: { bustype: number; vendor: number; product: number; version: number };
  /** EV_KEY codes the device sends (below 1024: the union holds 128 bytes of bitmap). */
  keys: number[];
}

/** The union's content for (select, subsel); empty when the device has nothing there. */
export function configItem(id: InputIdentity, select: number, subsel: number): Uint8Array {
  switch (select) {
    case CFG_ID_NAME:
      return subsel === 0 ? ascii(id.name) : new Uint8Array(0);
    case CFG_ID_SERIAL:
      return subsel === 0 ? ascii(id.serial) : new Uint8Array(0);
    case CFG_ID_DEVIDS: {
      if (subsel !== 0) return new Uint8Array(0);
      const b = new Uint8Array(8);
      const dv = new DataView(b.buffer);
      [id.devids.bustype, id.devids.vendor, id.devids.product, id.devids.version].forEach((v, i) => dv.setUint16(2 * i, v, true));
      return b;
    }
    case CFG_EV_BITS: {
      if (subsel !== EV_KEY || !id.keys.length) return new Uint8Array(0);
      // Byte n carries codes 8n..8n+7; the size covers the highest code.
      const b = new Uint8Array((Math.max(...id.keys) >> 3) + 1);
      for (const k of id.keys) b[k >> 3] |= 1 << (k & 7);
      return b;
    }
    default:
      // CFG_UNSET, CFG_PROP_BITS (no properties), CFG_ABS_INFO (no axes), anything unknown.
      return new Uint8Array(0);
  }
}

/** The whole config space as the driver sees it after selecting (select, subsel). */
export function configBytes(id: InputIdentity, select: number, subsel: number): Uint8Array {
  const cfg = new Uint8Array(CFG_BYTES);
  const item = configItem(id, select, subsel).subarray(0, CFG_UNION_BYTES);
  cfg[0] = select;
  cfg[1] = subsel;
  cfg[2] = item.length;
  cfg.set(item, CFG_UNION_OFFSET);
  return cfg;
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s.slice(0, CFG_UNION_BYTES), (c) => c.charCodeAt(0) & 0x7f);
}

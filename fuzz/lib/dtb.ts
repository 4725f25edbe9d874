// A small independent DTB reader for the FDT target's round-trip check: walks the
// structure block and returns every property as "path/name" -> value bytes.
import { check } from './expect.js';

export function readDtb(dtb: Uint8Array): Map<string, Uint8Array> {
  const dv = new DataView(dtb.buffer, dtb.byteOffset, dtb.byteLength);
  check(dtb.length >= 40 && dv.getUint32(0) === 0xd00dfeed, 'dtb: bad magic');
  const total = dv.getUint32(4);
  const offStruct = dv.getUint32(8);
  const offStrings = dv.getUint32(12);
  const sizeStrings = dv.getUint32(32);
  const sizeStruct = dv.getUint32(36);
  check(total <= dtb.length, `dtb: totalsize ${total} beyond the blob (${dtb.length})`);
  check(offStruct + sizeStruct <= total && offStrings + sizeStrings <= total, 'dtb: blocks outside totalsize');
  const cstr = (off: number, end: number): string => {
    let e = off;
    while (e < end && dtb[e] !== 0) e++;
    check(e < end, 'dtb: unterminated string');
    return Buffer.from(dtb.subarray(off, e)).toString('latin1');
  };
  const props = new Map<string, Uint8Array>();
  const path: string[] = [];
  let p = offStruct;
  const end = offStruct + sizeStruct;
  for (;;) {
    check(p + 4 <= end, 'dtb: structure block ends without FDT_END');
    const tok = dv.getUint32(p);
    p += 4;
    if (tok === 1) {
      const name = cstr(p, end);
      path.push(name);
      p = (p + name.length + 1 + 3) & ~3;
    } else if (tok === 2) {
      check(path.length > 0, 'dtb: END_NODE without BEGIN_NODE');
      path.pop();
    } else if (tok === 3) {
      const len = dv.getUint32(p);
      const nameOff = dv.getUint32(p + 4);
      check(p + 8 + len <= end, 'dtb: property runs past the structure block');
      props.set(path.join('/') + '/' + cstr(offStrings + nameOff, offStrings + sizeStrings), dtb.slice(p + 8, p + 8 + len));
      p = (p + 8 + len + 3) & ~3;
    } else if (tok === 4) {
      continue;
    } else {
      check(tok === 9, `dtb: unknown token ${tok}`);
      check(path.length === 0, 'dtb: FDT_END inside a node');
      return props;
    }
  }
}

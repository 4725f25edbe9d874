// A guest kernel that writes 'A' to the UART as fast as it can, forever: for
// tests of what the daemon does with a flood of console output.

/** `j 0x40` over the Image header, then `lui t0,0x10000; li t1,65; sb t1,0(t0); j -4`. */
export function spewKernel(): Uint8Array {
  const img = new Uint8Array(0x50);
  const dv = new DataView(img.buffer);
  dv.setUint32(0, 0x0400006f, true);
  [0x100002b7, 0x04100313, 0x00628023, 0xffdff06f].forEach((insn, i) => dv.setUint32(0x40 + i * 4, insn >>> 0, true));
  img.set([0x52, 0x53, 0x43, 0x05], 0x38); // "RSC\x05"
  return img;
}

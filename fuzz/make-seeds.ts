// Writes the seed corpus (fuzz/corpus/TARGET/seed-*): small valid inputs for each
// target, made with real tools where there are some (qemu-img, the RISC-V cross
// compiler), so fuzzing starts deep inside each parser. Run once after a format
// change: `node dist/fuzz/make-seeds.js` (needs qemu-img, riscv64-linux-gnu-gcc).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQcow2, openQcow2 } from '../src/storage/qcow2.js';
import {
  arpRequest, dhcpFrame, dnsQuery, eth, icmpEcho, ipv4, tcpFrame, udp, udpFrame, GW_IP, DNS_IP, GUEST_IP, GW_MAC, GUEST_MAC, TCP_SYN, TCP_ACK, TCP_PSH, TCP_FIN,
} from '../test/lib/net-frames.js';
import { tempPath } from './lib/temp.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function seed(target: string, name: string, data: Uint8Array | string): void {
  const dir = join(root, 'fuzz', 'corpus', target);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `seed-${name}`), data);
}

const le16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
const le32 = (v: number) => [...le16(v & 0xffff), ...le16(v >>> 16)];

// ---- qcow2 images: qemu-img made, 512-byte clusters, with data so L2 tables exist ----
function qcow2Seeds(): void {
  const raw = tempPath('data.raw');
  const data = new Uint8Array(64 * 1024);
  for (let i = 0; i < 8192; i++) data[i] = (i * 7) & 0xff;
  writeFileSync(raw, data);
  const variants: [string, string[]][] = [
    ['v3', ['-O', 'qcow2', '-o', 'cluster_size=512']],
    ['v2', ['-O', 'qcow2', '-o', 'cluster_size=512,compat=0.10']],
    ['compressed', ['-c', '-O', 'qcow2', '-o', 'cluster_size=4096']],
    ['refbits1', ['-O', 'qcow2', '-o', 'cluster_size=512,refcount_bits=1']],
  ];
  for (const [name, args] of variants) {
    const out = tempPath(`${name}.qcow2`);
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', ...args, raw, out]);
    const bytes = readFileSync(out);
    seed('qcow2-image', name, bytes);
    seed('disk-format', name, bytes); // 'Q' % 3 = 0: the format is detected
  }
  writeFileSync(tempPath('base.raw'), new Uint8Array(64 * 1024));
  const overlay = tempPath('overlay.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', '-b', 'base.raw', '-F', 'raw', overlay, '64K']);
  seed('qcow2-image', 'overlay', readFileSync(overlay));
  // Written by tsvisor itself: its own allocation pattern.
  const own = tempPath('own.qcow2');
  createQcow2(own, { size: 64 * 1024, clusterBits: 9 });
  const img = openQcow2(own);
  img.write(0, data.subarray(0, 2048));
  img.write(40960, data.subarray(0, 1024));
  img.close();
  seed('qcow2-image', 'tsvisor', readFileSync(own));
  seed('disk-format', 'raw', data.subarray(0, 1024));
  // qcow2-ops: write, read back, zero, discard, reopen, read.
  // op, offset selector, u16 offset (x64), length selector, u16 length[, value]
  seed('qcow2-ops', 'mixed', Uint8Array.from([
    0, 0, ...le16(10), 0, ...le16(200), 7, 1, 0, ...le16(10), 0, ...le16(200), 2, 0, ...le16(40), 0, ...le16(100),
    3, 0, ...le16(0), 0, ...le16(512), 4, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, ...le16(4095),
  ]));
}

// ---- kernels: a static RISC-V ELF from the cross compiler, the head of a real Image ----
function kernelSeeds(): void {
  const src = tempPath('k.c');
  const elf = tempPath('k.elf');
  writeFileSync(src, 'void _start(void) { for (;;) __asm__ volatile("wfi"); }\n');
  execFileSync('riscv64-linux-gnu-gcc', ['-nostdlib', '-static', '-no-pie', '-Os', '-Wl,-Ttext=0x80200000', '-Wl,--build-id=none', '-s', '-o', elf, src]);
  seed('kernel-loader', 'elf', readFileSync(elf));
  // A RISC-V Linux Image header (64 bytes) as the kernel's boot documentation lays it out.
  const img = new Uint8Array(4096);
  const dv = new DataView(img.buffer);
  dv.setUint32(0, 0x0000006f, true); // code0: j . (a jump over the header)
  dv.setBigUint64(8, 0x200000n, true); // text_offset
  dv.setBigUint64(16, 0x10000n, true); // image_size
  dv.setBigUint64(24, 0n, true); // flags
  dv.setUint32(32, 0x2, true); // version 0.2
  img.set([0x52, 0x49, 0x53, 0x43, 0x56, 0, 0, 0], 0x30); // "RISCV"
  img.set([0x52, 0x53, 0x43, 0x05], 0x38); // "RSC\x05"
  seed('kernel-loader', 'image', img.subarray(0, 256));
}

// ---- device tree: command lines and options ----
function fdtSeeds(): void {
  seed('fdt', 'cmdline', Uint8Array.from([0, ...le16(511), 0, 0, ...Buffer.from('console=ttyS0 earlycon=sbi root=/dev/vda rw')]));
  const isa = Buffer.from('rv64imafdc_zicsr_zifencei');
  seed('fdt', 'all', Uint8Array.from([0xff, ...le32(0x2000_0000), 0, 0, 0, 0,
    ...le32(0x8100_0000), 0, 0, 0, 0, ...le32(0x8110_0000), 0, 0, 0, 0,
    isa.length, ...isa, 1, 1, 3, 0, 1, 7, 1, 1, 1, 1, ...le16(4096), 0, 0, ...Buffer.from('quiet')]));
}

// ---- API bodies ----
function apiSeeds(): void {
  const full = {
    name: 'vm1', memory: 256, kernel: 'vmlinux', initrd: 'vmlinux', append: 'console=hvc0', rootDisk: true,
    disks: [{ path: 'disk.img', format: 'raw', readonly: false, serial: 'abc', limits: { bps: 1000000, iops: 100, bpsBurst: 10, iopsBurst: 1 } }],
    nics: [{ mode: 'user', mac: '52:54:00:12:34:56', hostfwd: ['tcp:127.0.0.1:8080-:80'], allow: ['10.0.0.0/8'], limits: { txBps: 1000, rxPps: 10 } },
      { mode: 'switch', switch: 'sw0' }, { mode: 'tap', tap: 'tap0' }],
    cpu: { weight: 1024, cap: 1.5 }, deterministic: true, jit: false, balloon: true, restart: { policy: 'on-failure', maxRetries: 3 }, isolation: 'process',
  };
  seed('api-body', 'create-full', '\0' + JSON.stringify(full));
  seed('api-body', 'create-min', '\0' + JSON.stringify({ name: 'a', memory: 64, kernel: 'sub/../vmlinux' }));
  seed('api-body', 'create-debug', '\x02' + JSON.stringify({ name: 'a', memory: 64, kernel: 'out/x', debug: { failAfterMs: 5 } }));
  seed('api-body', 'patch', '\x01' + JSON.stringify({ disks: [{ index: 0, limits: { bps: 5 } }], nics: [{ index: 1, limits: { rxBps: 9 } }], balloon: { targetMiB: 64 }, cpu: { weight: 2, cap: null } }));
}

// ---- guest frames: [flags][len u16 LE][frame], flags 1 MACs, 2 loopback peer port, 4 IP length, 8 L4 checksum, 16 yield ----
function netSeeds(): void {
  const rec = (flags: number, f: Uint8Array) => [flags, ...le16(f.length), ...f];
  const syn = tcpFrame({ src: GUEST_IP, dst: GW_IP, sport: 40000, dport: 7, seq: 1000, ack: 0, flags: TCP_SYN, mss: 1460 });
  const ack = tcpFrame({ src: GUEST_IP, dst: GW_IP, sport: 40000, dport: 7, seq: 1001, ack: 1, flags: TCP_ACK | TCP_PSH, payload: Buffer.from('hello') });
  const fin = tcpFrame({ src: GUEST_IP, dst: GW_IP, sport: 40000, dport: 7, seq: 1006, ack: 1, flags: TCP_ACK | TCP_FIN });
  seed('net-user', 'tcp', Uint8Array.from([...rec(2 | 8 | 16, syn), ...rec(2 | 8 | 16, ack), ...rec(2 | 8 | 16, fin)]));
  seed('net-user', 'udp', Uint8Array.from(rec(2 | 8 | 16, udpFrame(GUEST_IP, GW_IP, 5000, 7, Buffer.from('ping')))));
  seed('net-user', 'arp', Uint8Array.from(rec(0, arpRequest(GW_IP))));
  seed('net-user', 'icmp', Uint8Array.from(rec(0, icmpEcho(GW_IP, 1, 1, Buffer.from('abcdefgh')))));
  seed('net-user', 'dhcp', Uint8Array.from([...rec(0, dhcpFrame(1, { xid: 42 })), ...rec(0, dhcpFrame(3, { xid: 42, requested: GUEST_IP, serverId: GW_IP }))]));
  seed('net-user', 'dns', Uint8Array.from(rec(16, udpFrame(GUEST_IP, DNS_IP, 5353, 53, dnsQuery(7, 'example.test', 1)))));
  seed('net-user', 'ip-options', Uint8Array.from(rec(0, eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(GUEST_IP, GW_IP, 17, udp(GUEST_IP, GW_IP, 1, 2, new Uint8Array(4)), { options: new Uint8Array(4) })))));
}

// ---- virtio programs (fuzz/lib/virtio-harness.ts encoding): one well-formed request each ----
function virtioSeeds(): void {
  const RAM = 0x8000_0000;
  const bringUp = (queues: number, featuresLo = (1 << 28) | (1 << 29)) => [...le32(featuresLo), 1, ...Array(queues).fill([0, 0]).flat()];
  // op encodings: q, op, args
  const store = (off: number, bytes: number[]) => [0, 0, ...le16(off), bytes.length, ...bytes];
  const desc = (q: number, i: number, off: number, len: number, flags: number, next: number) => [q, 1, i, 0, ...le16(off), 0, ...le16(len), flags, 0, next];
  const offer = (q: number, head: number) => [q, 2, 0, head];
  const notify = (q: number) => [q, 3];
  const chain3 = (q: number, hdr: number[], dataLen: number, dataFlags: number) => [
    ...store(0xc000, hdr), ...desc(q, 0, 0xc000, hdr.length, 1, 1), ...desc(q, 1, 0xd000, dataLen, 1 | dataFlags, 2),
    ...desc(q, 2, 0xe000, 1, 2, 0), ...offer(q, 0), ...notify(q),
  ];
  // virtio-blk: the first byte picks the writable disk; read (IN), write (OUT), GET_ID.
  seed('virtio-blk', 'read', Uint8Array.from([0, ...bringUp(1), ...chain3(0, [...le32(0), 0, 0, 0, 0, ...le32(1), 0, 0, 0, 0], 512, 2)]));
  seed('virtio-blk', 'write', Uint8Array.from([0, ...bringUp(1), ...chain3(0, [...le32(1), 0, 0, 0, 0, ...le32(2), 0, 0, 0, 0], 1024, 0)]));
  seed('virtio-blk', 'get-id', Uint8Array.from([0, ...bringUp(1), ...chain3(0, [...le32(8), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 20, 2)]));
  const one = (q: number, len: number, flags: number) => [...desc(q, 0, 0xd000, len, flags, 0), ...offer(q, 0), ...notify(q)];
  seed('virtio-rng', 'read', Uint8Array.from([...bringUp(1), ...one(0, 64, 2)]));
  seed('virtio-console', 'io', Uint8Array.from([...bringUp(2), ...store(0xd000, [104, 105]), ...one(1, 2, 0), ...one(0, 16, 2), 0, 6, 3, 65, 66, 67]));
  const pfns = [...le32(3), ...le32(4), ...le32(5)];
  seed('virtio-balloon', 'inflate', Uint8Array.from([...bringUp(5, 0b111), 0, 6, 0, ...le32(8), ...store(0xd000, pfns), ...one(0, 12, 0), ...store(0xd000, pfns.slice(0, 4)), ...one(1, 4, 0)]));
  const hdr = new Array(12).fill(0);
  const frame = [...GW_MAC, ...GUEST_MAC, 8, 0, ...new Array(46).fill(0x11)];
  seed('virtio-net', 'tx-rx', Uint8Array.from([...bringUp(2, 0xffffffff), ...store(0xd000, [...hdr, ...frame]), ...one(1, 12 + frame.length, 0),
    1, 6, 0, ...le16(frame.length), ...frame, ...one(0, 1600, 2), 0, 6, 1]));
  // virtqueue: queue size 8, indirect+event idx, table at 0; two chains and an indirect table in "RAM".
  const ram = new Uint8Array(4096);
  const dv = new DataView(ram.buffer);
  const d = (i: number, addr: number, len: number, flags: number, next: number, base = 0) => {
    dv.setBigUint64(base + 16 * i, BigInt(RAM + addr), true);
    dv.setUint32(base + 16 * i + 8, len, true);
    dv.setUint16(base + 16 * i + 12, flags, true);
    dv.setUint16(base + 16 * i + 14, next, true);
  };
  d(0, 0x400, 16, 1, 1); d(1, 0x410, 32, 2, 0); d(2, 0x200, 48, 4, 0);
  d(0, 0x500, 8, 1, 1, 0x200); d(1, 0x508, 8, 1, 2, 0x200); d(2, 0x510, 64, 2, 0, 0x200);
  dv.setUint16(0x800 + 2, 2, true); dv.setUint16(0x800 + 4, 0, true); dv.setUint16(0x800 + 6, 2, true);
  seed('virtqueue', 'chains', Uint8Array.from([3, 1, 1, 0, 0, 0, ...ram.subarray(0, 0xc10)]));
}

// ---- migration stream: programs for fuzz/targets/migration-stream.ts (see its build()) ----
function migrationSeeds(): void {
  const json = (typeIndex: number, v: unknown) => {
    const b = Buffer.from(JSON.stringify(v));
    return [1 | (typeIndex << 2), ...le16(b.length), ...b];
  };
  // Type indexes in FrameType order: HELLO 0, PAGES 3, ROUND 4, STATE 6, COMMIT 7, CANCEL 10.
  // A PAGES op: count, lie (0 = honest), then per page u16 index, flags (0x80 zero page), far (0 = as given).
  const pages = (list: [number, boolean][]) => [2, list.length, 0, ...list.flatMap(([i, z]) => [...le16(i), z ? 0x80 : 0, 0])];
  const session = [
    ...json(0, { magic: 'tsvisor-migration', version: 1, memMiB: 1, name: 'vm' }),
    ...pages([[0, false], [5, true], [7, false]]),
    ...json(4, { round: 0 }),
    ...pages([[7, false]]),
    ...json(4, { round: 1 }),
    ...json(6, { machine: {}, instret: 1000 }),
    ...json(7, {}),
  ];
  seed('migration-stream', 'session', Uint8Array.from([20, 15, ...session]));
  seed('migration-stream', 'byte-by-byte', Uint8Array.from([0, 15, ...session]));
  seed('migration-stream', 'bad-checksum', Uint8Array.from([20, 15, ...pages([[1, false]]), 3 | (3 << 2), 4, 1, 2, 3, 4, 9, 0]));
  seed('migration-stream', 'cancel', Uint8Array.from([3, 7, ...pages([[2, false], [3, true]]), ...json(10, { reason: 'test' })]));
}

const GROUPS: Record<string, () => void> = {
  qcow2: qcow2Seeds, kernel: kernelSeeds, fdt: fdtSeeds, api: apiSeeds, net: netSeeds, virtio: virtioSeeds, migration: migrationSeeds,
};
// Arguments name groups to rewrite (e.g. `migration`); none rewrites them all.
const only = process.argv.slice(2);
for (const g of only) if (!GROUPS[g]) throw new Error(`unknown seed group ${g} (${Object.keys(GROUPS).join(', ')})`);
for (const [name, make] of Object.entries(GROUPS)) if (only.length === 0 || only.includes(name)) make();
console.log('seeds written to fuzz/corpus/');

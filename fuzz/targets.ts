// The fuzz targets: one per surface an outsider feeds. `sync` targets run in
// Jazzer's synchronous mode; the others return a promise (real sockets, dynamic
// imports). `maxLen` bounds the inputs libFuzzer generates.

export interface TargetInfo {
  name: string;
  what: string;
  sync: boolean;
  maxLen: number;
}

export const TARGETS: readonly TargetInfo[] = [
  { name: 'virtqueue', what: 'split virtqueue walker: descriptor tables, indirect tables, rings (src/devices/virtio/queue.ts)', sync: true, maxLen: 4200 },
  { name: 'virtio-blk', what: 'virtio-blk through virtio-mmio: requests on a raw temp disk', sync: true, maxLen: 2048 },
  { name: 'virtio-net', what: 'virtio-net through virtio-mmio: transmit headers/offloads, receive into guest buffers', sync: true, maxLen: 4096 },
  { name: 'virtio-console', what: 'virtio-console through virtio-mmio: output chains, input delivery', sync: true, maxLen: 2048 },
  { name: 'virtio-rng', what: 'virtio-rng through virtio-mmio: entropy requests', sync: true, maxLen: 2048 },
  { name: 'virtio-balloon', what: 'virtio-balloon through virtio-mmio: page lists, stats, free page reports', sync: true, maxLen: 4096 },
  { name: 'qcow2-image', what: 'qcow2 header, extensions, L1, refcount and L2 parsing of a whole image file, then I/O', sync: true, maxLen: 24576 },
  { name: 'qcow2-ops', what: 'I/O sequences (write, read, zero, discard, flush, reopen) on a qemu-img image vs a model', sync: true, maxLen: 1024 },
  { name: 'disk-format', what: 'raw/qcow2 format detection and openDisk by path', sync: false, maxLen: 24576 },
  { name: 'kernel-loader', what: 'Linux Image and ELF64 kernel parsing and the boot layout (src/machine/loader.ts)', sync: true, maxLen: 4096 },
  { name: 'fdt', what: 'device tree builder: command line, RAM, initrd, ISA, MMU, slots (src/machine/fdt.ts, virt-fdt.ts)', sync: true, maxLen: 4096 },
  { name: 'net-user', what: 'user-mode network stack: guest Ethernet/ARP/IPv4/ICMP/UDP/DHCP/DNS/TCP frames (src/net/user)', sync: false, maxLen: 8192 },
  { name: 'migration-stream', what: 'live-migration stream on the destination: frames, checksums, JSON messages, page batches into RAM (src/vm/migration/stream.ts)', sync: true, maxLen: 8192 },
  { name: 'api-body', what: 'REST API bodies: JSON, schema, images-directory paths, NIC specs (src/host/validate.ts)', sync: true, maxLen: 4096 },
];

export function findTarget(name: string): TargetInfo | undefined {
  return TARGETS.find((t) => t.name === name);
}

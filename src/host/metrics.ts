// Prometheus metrics (prom-client): gauges filled from the registry at scrape
// time, one series per VM (label `vm`), host totals, and the daemon process's
// own metrics (RSS, CPU, event loop lag).

import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Host } from './registry.js';
import type { NicStats } from '../net/nic-host.js';
import type { BlkStats } from '../devices/virtio/blk/device.js';

export function createMetrics(host: Host): Registry {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: 'tsvisor_daemon_' });
  const vmGauge = (name: string, help: string, value: (s: Record<string, unknown>) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['vm'],
      registers: [reg],
      collect() {
        this.reset();
        for (const vm of host.vms.values()) {
          const v = value(host.vmStats(vm));
          if (v !== null) this.set({ vm: vm.name }, v); // null: not known for this VM now
        }
      },
    });
  new Gauge({
    name: 'tsvisor_vm_state',
    help: 'VM state: 1 for the current state of each VM',
    labelNames: ['vm', 'state'],
    registers: [reg],
    collect() {
      this.reset();
      for (const vm of host.vms.values()) {
        for (const s of ['created', 'running', 'paused', 'stopped', 'failed']) this.set({ vm: vm.name, state: s }, vm.state === s ? 1 : 0);
      }
    },
  });
  vmGauge('tsvisor_vm_guest_instructions', 'guest instructions retired since the VM started', (s) => s.instructions as number);
  vmGauge('tsvisor_vm_mips', 'guest instructions per second (millions), last scheduler window', (s) => s.mips as number);
  vmGauge('tsvisor_vm_busy_seconds', 'host CPU time spent running guest code', (s) => (s.busyUs as number) / 1e6);
  vmGauge('tsvisor_vm_cpu_share', 'host cores used, last scheduler window', (s) => s.cpuShare as number);
  vmGauge('tsvisor_vm_instruction_share', 'share of all guest instructions, last scheduler window', (s) => s.instructionShare as number);
  vmGauge('tsvisor_vm_translated_share', 'fraction of instructions run by translated code', (s) => s.translatedShare as number);
  vmGauge('tsvisor_vm_uptime_seconds', 'time since the VM started', (s) => s.uptimeSeconds as number);
  vmGauge('tsvisor_vm_memory_reserved_bytes', 'guest RAM reserved against the host budget', (s) => (s.memoryReservedMiB as number) * 1048576);
  vmGauge('tsvisor_vm_memory_touched_bytes', 'guest RAM backed by host memory now (touched, not given back)', (s) =>
    s.memoryTouchedMiB === null ? null : (s.memoryTouchedMiB as number) * 1048576,
  );
  vmGauge('tsvisor_vm_cpu_weight', 'CPU weight (shares)', (s) => s.weight as number);
  vmGauge('tsvisor_vm_restarts', 'restarts by the restart policy', (s) => s.restarts as number);
  // NICs: the daemon holds their counters (for a VM in its own process, as of the child's last report).
  const nicGauge = (name: string, help: string, value: (n: NicStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['vm', 'nic'],
      registers: [reg],
      collect() {
        this.reset();
        for (const vm of host.vms.values()) {
          (vm.handle?.nicStats() ?? []).forEach((n, i) => this.set({ vm: vm.name, nic: `eth${i}` }, value(n)));
        }
      },
    });
  nicGauge('tsvisor_vm_nic_tx_frames', 'frames the guest sent', (n) => n.device.txFrames);
  nicGauge('tsvisor_vm_nic_tx_bytes', 'bytes the guest sent', (n) => n.device.txBytes);
  nicGauge('tsvisor_vm_nic_rx_frames', 'frames delivered to the guest', (n) => n.device.rxFrames);
  nicGauge('tsvisor_vm_nic_rx_bytes', 'bytes delivered to the guest', (n) => n.device.rxBytes);
  nicGauge('tsvisor_vm_nic_dropped_frames', 'frames dropped: malformed, refused by the backend, or lost to a full ring',
    (n) => n.device.txDropped + n.device.rxDropped + n.host.dropped + n.ringDrops.toHost + n.ringDrops.toGuest);
  // Disks: the counters live in the VM's worker; one query per VM and scrape, never waiting long on a busy VM.
  let diskCache: { at: number; stats: Map<string, BlkStats[]> } | null = null;
  const diskStats = async (): Promise<Map<string, BlkStats[]>> => {
    if (diskCache && Date.now() - diskCache.at < 500) return diskCache.stats;
    const out = new Map<string, BlkStats[]>();
    await Promise.all([...host.vms.values()].map(async (vm) => {
      const h = vm.handle;
      if (!h) return;
      const d = await h.deviceStatsWithin(1000);
      if (d) out.set(vm.name, d.disks);
    }));
    diskCache = { at: Date.now(), stats: out };
    return out;
  };
  const diskGauge = (name: string, help: string, value: (d: BlkStats) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['vm', 'disk'],
      registers: [reg],
      async collect() {
        const all = await diskStats();
        this.reset();
        for (const [vm, disks] of all) disks.forEach((d, i) => this.set({ vm, disk: `vd${String.fromCharCode(97 + i)}` }, value(d)));
      },
    });
  diskGauge('tsvisor_vm_disk_read_bytes', 'bytes the guest read', (d) => d.readBytes);
  diskGauge('tsvisor_vm_disk_written_bytes', 'bytes the guest wrote', (d) => d.writeBytes);
  diskGauge('tsvisor_vm_disk_ops', 'requests (reads, writes, flushes, discards)', (d) => d.readOps + d.writeOps + d.otherOps);
  diskGauge('tsvisor_vm_disk_throttled_seconds', 'time requests waited for the rate limiter', (d) => d.throttledMs / 1000);
  const hostGauge = (name: string, help: string, value: () => number) =>
    new Gauge({ name, help, registers: [reg], collect() { this.set(value()); } });
  hostGauge('tsvisor_host_cpus', 'host cores given to VMs (--cpus)', () => host.opts.cpus);
  hostGauge('tsvisor_host_memory_budget_bytes', 'guest RAM budget (--memory-budget)', () => host.opts.memoryBudgetMiB * 1048576);
  hostGauge('tsvisor_host_memory_reserved_bytes', 'guest RAM reserved by defined VMs', () => host.reservedMiB() * 1048576);
  hostGauge('tsvisor_host_vms', 'defined VMs', () => host.vms.size);
  return reg;
}

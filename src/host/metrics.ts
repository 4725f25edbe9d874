// Prometheus metrics (prom-client): filled from the registry at scrape time,
// one series per VM (label `vm`), host totals, and the daemon process's own
// metrics (RSS, CPU, event loop lag). Values that only grow are counters
// (`_total`), the rest gauges. Every value is read from shared memory or a
// process VM's last report, so a scrape never waits on a VM.

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Host } from './registry.js';
import type { FleetMember } from './fleet-member.js';
import type { HostRecord } from './fleet-records.js';
import type { VmSupervisor } from './vm-supervisor.js';
import type { NicStats } from '../net/nic-host.js';
import type { BlkStats } from '../devices/virtio/blk/device.js';
import { hartsOfVm, type HartReport } from '../vm/hart-stats-block.js';

/** Per-host fleet gauges (serve --fleet), from the member's last read of etcd (refreshed every second). */
export function addFleetMetrics(reg: Registry, fleet: FleetMember): void {
  const hostGauge = (name: string, help: string, value: (h: HostRecord) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['host'],
      registers: [reg],
      collect() {
        this.reset();
        for (const h of fleet.snapshot.hosts) this.set({ host: h.name }, value(h));
      },
    });
  hostGauge('tsvisor_fleet_host_up', 'hosts holding a fleet lease (1 each)', () => 1);
  hostGauge('tsvisor_fleet_host_memory_budget_mib', 'memory budget each host offers the fleet', (h) => h.memoryBudgetMiB);
  hostGauge('tsvisor_fleet_host_allocated_mib', 'memory placed on each host by the fleet', (h) => fleet.snapshot.allocated.get(h.name) ?? 0);
  hostGauge('tsvisor_fleet_host_vms', 'VMs defined on each host', (h) => h.vms);
  hostGauge('tsvisor_fleet_host_unschedulable', '1 for a drained host', (h) => (fleet.snapshot.unschedulable.has(h.name) ? 1 : 0));
  new Gauge({
    name: 'tsvisor_fleet_lease_held',
    help: 'whether this daemon holds its fleet lease (1) or not (0: fenced or rejoining)',
    registers: [reg],
    collect() {
      this.set(fleet.leaseHeld ? 1 : 0);
    },
  });
  new Counter({
    name: 'tsvisor_fleet_heartbeats_total',
    help: 'keep-alives of this daemon\'s fleet lease that etcd answered',
    registers: [reg],
    collect() {
      this.reset();
      this.inc(fleet.heartbeats);
    },
  });
  new Gauge({
    name: 'tsvisor_fleet_etcd_ops',
    help: 'etcd operations this daemon has issued',
    registers: [reg],
    collect() {
      this.set(fleet.store.ops);
    },
  });
}

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
  // Counters that only grow (per run of the VM: they start again at 0 when it restarts, which Prometheus reads as a reset).
  const vmCounter = (name: string, help: string, value: (s: Record<string, unknown>) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['vm'],
      registers: [reg],
      collect() {
        this.reset();
        for (const vm of host.vms.values()) this.inc({ vm: vm.name }, value(host.vmStats(vm)));
      },
    });
  vmCounter('tsvisor_vm_guest_instructions_total', 'guest instructions retired since the VM started', (s) => s.instructions as number);
  vmGauge('tsvisor_vm_mips', 'guest instructions per second (millions), last scheduler window', (s) => s.mips as number);
  vmCounter('tsvisor_vm_busy_seconds_total', 'host CPU time spent running guest code', (s) => (s.busyUs as number) / 1e6);
  vmGauge('tsvisor_vm_cpu_share', 'host cores used, last scheduler window', (s) => s.cpuShare as number);
  vmGauge('tsvisor_vm_instruction_share', 'share of all guest instructions, last scheduler window', (s) => s.instructionShare as number);
  vmGauge('tsvisor_vm_translated_share', 'fraction of instructions run by translated code', (s) => s.translatedShare as number);
  vmGauge('tsvisor_vm_uptime_seconds', 'time since the VM started', (s) => s.uptimeSeconds as number);
  vmGauge('tsvisor_vm_memory_reserved_bytes', 'guest RAM reserved against the host budget', (s) => (s.memoryReservedMiB as number) * 1048576);
  vmGauge('tsvisor_vm_memory_touched_bytes', 'guest RAM backed by host memory now (touched, not given back)', (s) =>
    s.memoryTouchedMiB === null ? null : (s.memoryTouchedMiB as number) * 1048576,
  );
  vmGauge('tsvisor_vm_cpu_weight', 'CPU weight (shares)', (s) => s.weight as number);
  vmCounter('tsvisor_vm_restarts_total', 'restarts by the restart policy', (s) => s.restarts as number);
  vmCounter('tsvisor_vm_console_log_written_bytes_total', 'console bytes written to the log', (s) => (s.consoleLog as { writtenBytes: number }).writtenBytes);
  vmCounter('tsvisor_vm_console_log_dropped_bytes_total', 'console bytes not logged because the disk was slower than the guest', (s) =>
    (s.consoleLog as { droppedBytes: number }).droppedBytes,
  );
  // NICs and disks: counters in shared memory (for a VM in its own process, as of the child's last report); nothing waits on a worker.
  const devCounter = <T>(name: string, help: string, label: string, list: (vm: VmSupervisor) => T[], id: (i: number) => string, value: (x: T) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['vm', label],
      registers: [reg],
      collect() {
        this.reset();
        for (const vm of host.vms.values()) list(vm).forEach((x, i) => this.inc({ vm: vm.name, [label]: id(i) }, value(x)));
      },
    });
  const nics = (vm: VmSupervisor): NicStats[] => vm.handle?.nicStats() ?? [];
  const nicCounter = (name: string, help: string, value: (n: NicStats) => number) => devCounter(name, help, 'nic', nics, (i) => `eth${i}`, value);
  nicCounter('tsvisor_vm_nic_tx_frames_total', 'frames the guest sent', (n) => n.device.txFrames);
  nicCounter('tsvisor_vm_nic_tx_bytes_total', 'bytes the guest sent', (n) => n.device.txBytes);
  nicCounter('tsvisor_vm_nic_rx_frames_total', 'frames delivered to the guest', (n) => n.device.rxFrames);
  nicCounter('tsvisor_vm_nic_rx_bytes_total', 'bytes delivered to the guest', (n) => n.device.rxBytes);
  nicCounter('tsvisor_vm_nic_dropped_frames_total', 'frames dropped: malformed, refused by the backend, or lost to a full ring',
    (n) => n.device.txDropped + n.device.rxDropped + n.host.dropped + n.ringDrops.toHost + n.ringDrops.toGuest);
  const disks = (vm: VmSupervisor): BlkStats[] => vm.handle?.sharedDeviceStats().disks ?? [];
  const diskCounter = (name: string, help: string, value: (d: BlkStats) => number) =>
    devCounter(name, help, 'disk', disks, (i) => `vd${String.fromCharCode(97 + i)}`, value);
  diskCounter('tsvisor_vm_disk_read_bytes_total', 'bytes the guest read', (d) => d.readBytes);
  diskCounter('tsvisor_vm_disk_written_bytes_total', 'bytes the guest wrote', (d) => d.writeBytes);
  diskCounter('tsvisor_vm_disk_ops_total', 'requests (reads, writes, flushes, discards)', (d) => d.readOps + d.writeOps + d.otherOps);
  diskCounter('tsvisor_vm_disk_throttled_seconds_total', 'time requests waited for the rate limiter', (d) => d.throttledMs / 1000);
  new Gauge({
    name: 'tsvisor_vm_disk_throttled',
    help: '1 while a request of the disk waits for the rate limiter',
    labelNames: ['vm', 'disk'],
    registers: [reg],
    collect() {
      this.reset();
      for (const vm of host.vms.values()) disks(vm).forEach((d, i) => this.set({ vm: vm.name, disk: `vd${String.fromCharCode(97 + i)}` }, d.throttled ? 1 : 0));
    },
  });
  // Per hart (label `hart`), from the worker's shared block: nothing waits on a worker.
  const harts = (vm: VmSupervisor): HartReport[] => hartsOfVm(vm.handle?.hartStats() ?? [], vm.config.cpus ?? vm.config.vcpus ?? 1);
  const hartCounter = (name: string, help: string, value: (h: HartReport) => number) =>
    devCounter(name, help, 'hart', harts, (i) => String(i), value);
  hartCounter('tsvisor_vm_hart_instructions_total', 'guest instructions each hart retired', (h) => h.instructions);
  hartCounter('tsvisor_vm_hart_interrupts_total', 'interrupts each hart took', (h) => h.interrupts);
  hartCounter('tsvisor_vm_hart_wfis_total', 'times each hart went idle in WFI', (h) => h.wfis);
  hartCounter('tsvisor_vm_hart_ipis_total', 'SBI IPIs sent to each hart', (h) => h.ipis);
  hartCounter('tsvisor_vm_hart_switched_in_total', 'times each hart got the VM\'s thread from another hart', (h) => h.switchedIn);
  new Gauge({
    name: 'tsvisor_vm_hart_state',
    help: 'hart state: 1 for the current SBI HSM state of each hart',
    labelNames: ['vm', 'hart', 'state'],
    registers: [reg],
    collect() {
      this.reset();
      for (const vm of host.vms.values()) {
        for (const h of harts(vm)) for (const s of ['started', 'stopped', 'suspended']) this.set({ vm: vm.name, hart: String(h.hart), state: s }, h.state === s ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'tsvisor_vm_hart_waiting',
    help: '1 while a hart waits for an interrupt (WFI)',
    labelNames: ['vm', 'hart'],
    registers: [reg],
    collect() {
      this.reset();
      for (const vm of host.vms.values()) for (const h of harts(vm)) this.set({ vm: vm.name, hart: String(h.hart) }, h.waiting ? 1 : 0);
    },
  });
  const hostGauge = (name: string, help: string, value: () => number) =>
    new Gauge({ name, help, registers: [reg], collect() { this.set(value()); } });
  hostGauge('tsvisor_host_cpus', 'host cores given to VMs (--cpus)', () => host.opts.cpus);
  hostGauge('tsvisor_host_memory_budget_bytes', 'guest RAM budget (--memory-budget)', () => host.opts.memoryBudgetMiB * 1048576);
  hostGauge('tsvisor_host_memory_reserved_bytes', 'guest RAM reserved by defined VMs', () => host.reservedMiB() * 1048576);
  hostGauge('tsvisor_host_vms', 'defined VMs', () => host.vms.size);
  hostGauge('tsvisor_scheduler_period_late_seconds', 'how late the CPU scheduler\'s last period began (a busy event loop)', () => host.scheduler.lateMs / 1000);
  hostGauge('tsvisor_scheduler_boost', 'the CPU scheduler\'s correction of its capacity estimate from the process\'s real CPU use', () => host.scheduler.boost);
  return reg;
}

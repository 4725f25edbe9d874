// Prometheus metrics (prom-client): gauges filled from the registry at scrape
// time, one series per VM (label `vm`), host totals, and the daemon process's
// own metrics (RSS, CPU, event loop lag).

import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Host } from './registry.js';

export function createMetrics(host: Host): Registry {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: 'tsvisor_daemon_' });
  const vmGauge = (name: string, help: string, value: (s: Record<string, unknown>) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['vm'],
      registers: [reg],
      collect() {
        this.reset();
        for (const vm of host.vms.values()) this.set({ vm: vm.name }, value(host.vmStats(vm)));
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
  vmGauge('tsvisor_vm_cpu_weight', 'CPU weight (shares)', (s) => s.weight as number);
  vmGauge('tsvisor_vm_restarts', 'restarts by the restart policy', (s) => s.restarts as number);
  // Disk and NIC series (bytes, ops, throttled time) belong here once the device work exposes them.
  const hostGauge = (name: string, help: string, value: () => number) =>
    new Gauge({ name, help, registers: [reg], collect() { this.set(value()); } });
  hostGauge('tsvisor_host_cpus', 'host cores given to VMs (--cpus)', () => host.opts.cpus);
  hostGauge('tsvisor_host_memory_budget_bytes', 'guest RAM budget (--memory-budget)', () => host.opts.memoryBudgetMiB * 1048576);
  hostGauge('tsvisor_host_memory_reserved_bytes', 'guest RAM reserved by defined VMs', () => host.reservedMiB() * 1048576);
  hostGauge('tsvisor_host_vms', 'defined VMs', () => host.vms.size);
  return reg;
}

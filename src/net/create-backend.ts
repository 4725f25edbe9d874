// Turns --net specs into running NIC hosts (backend + shared rings) for a VM.

import type { NetBackend } from './backend.js';
import { defaultMac } from './mac.js';
import { NicHost } from './nic-host.js';
import type { NicSpec } from './nic-spec.js';
import { SharedSwitchBackend } from './switch-hub.js';
import { TapBackend } from './tap.js';

export async function createBackend(spec: NicSpec, label: string): Promise<NetBackend> {
  switch (spec.mode) {
    case 'switch':
      // Shared with VMs of other processes through a Unix socket (switch-hub.ts).
      return new SharedSwitchBackend(spec.name, label);
    case 'tap':
      return TapBackend.open(spec.ifname);
    case 'user': {
      const { createUserBackend } = await import('./user-backend.js');
      return createUserBackend(spec.params, spec.hostAccess);
    }
  }
}

/**
 * One NicHost per spec, eth0 first. MACs default to a stable address derived
 * from the VM's name. If one backend cannot start, the ones already made are closed.
 */
export async function createNicHosts(specs: readonly NicSpec[], vmName: string): Promise<NicHost[]> {
  const hosts: NicHost[] = [];
  try {
    for (const [i, spec] of specs.entries()) {
      const backend = await createBackend(spec, `${vmName}/eth${i}`);
      hosts.push(new NicHost(backend, spec.mac ?? defaultMac(vmName, i), spec.limits));
    }
  } catch (e) {
    await Promise.allSettled(hosts.map((h) => h.close()));
    throw e;
  }
  return hosts;
}

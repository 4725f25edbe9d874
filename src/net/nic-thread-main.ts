// Entry of a VM's NIC I/O thread (see nic-thread.ts): runs the NIC backends
// and their pumps on this thread's event loop.

import { parentPort, workerData } from 'node:worker_threads';
import { createNicHosts } from './create-backend.js';
import type { NicHost } from './nic-host.js';
import { wakeSlot } from './nic-set.js';
import { NET_COUNTER_KEYS, type FromNicThread, type NicThreadInit, type ToNicThread } from './nic-thread.js';

/** How often the backends' counters are published for the owner. */
const PUBLISH_MS = 100;

const init = workerData as NicThreadInit;
const port = parentPort!;
const counters = new Float64Array(init.hostCounters);
let hosts: NicHost[] = [];
let publisher: NodeJS.Timeout | null = null;

function post(m: FromNicThread): void {
  port.postMessage(m);
}

function publish(): void {
  const k = NET_COUNTER_KEYS.length;
  hosts.forEach((h, i) => {
    const c = h.backend.counters();
    NET_COUNTER_KEYS.forEach((key, j) => (counters[i * k + j] = c[key]));
  });
}

async function main(): Promise<void> {
  try {
    hosts = await createNicHosts(init.specs, init.vmName);
  } catch (e) {
    post({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  port.on('message', (m: ToNicThread) => {
    if (m.type === 'start') {
      for (const h of hosts) h.start(() => wakeSlot(m.wakeCtrl));
      publisher = setInterval(publish, PUBLISH_MS);
    } else if (m.type === 'close') {
      if (publisher) clearInterval(publisher);
      void Promise.allSettled(hosts.map((h) => h.close())).then(() => {
        publish(); // the counters end where the NICs did
        post({ type: 'closed' });
      });
    }
  });
  publish();
  post({ type: 'ready', channels: hosts.map((h) => h.channel), descriptions: hosts.map((h) => h.backend.description) });
}

void main();

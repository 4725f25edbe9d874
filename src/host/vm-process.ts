// Entry of a VM's own process (isolation "process"), forked by the daemon.
// It hosts an ordinary VmHandle, so the emulator runs in a worker thread
// exactly as in the daemon, and the NIC backends run here too (they share
// frame rings, SharedArrayBuffers, with the worker). Everything the daemon
// needs travels on the IPC channel (vm-process-protocol.ts). The process
// lives only as long as that channel: when the daemon goes away, so does
// the VM.

import { VmHandle } from '../vm/vm-handle.js';
import { createNicHosts } from '../net/create-backend.js';
import type { NicHost } from '../net/nic-host.js';
import { lockVmImages, type VmLocks } from '../storage/vm-images.js';
import { disksWithOverlays } from '../vm/disk-freeze.js';
import type { VmConfig } from '../vm/protocol.js';
import { REPORT_INTERVAL_MS, rebaseCredit, type FromVmProcess, type ToVmProcess } from './vm-process-protocol.js';

if (!process.send) {
  process.stderr.write('vm-process: must be started by the tsvisor daemon (no IPC channel)\n');
  process.exit(2);
}

// Ctrl-C on the daemon's terminal reaches its whole process group; the
// daemon stops this VM itself, so the signal must not kill it first.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});

let handle: VmHandle | null = null;
let locks: VmLocks | null = null;
let files: VmConfig | null = null;
let reportTimer: NodeJS.Timeout | null = null;

function send(msg: FromVmProcess, then?: () => void): void {
  if (process.connected) process.send!(msg, undefined, {}, () => then?.());
  else then?.();
}

function report(): void {
  if (!handle) return;
  const cpu = process.cpuUsage();
  send({ type: 'report', live: handle.live(), nics: handle.nicStats(), devices: handle.sharedDeviceStats(), harts: handle.hartStats(), cpuUs: cpu.user + cpu.system, pendingInput: handle.pendingInputBytes });
}

/** Send the last message, and exit once it is written (exiting at once could drop it). */
function leave(last: FromVmProcess, code: number): void {
  if (reportTimer) clearInterval(reportTimer);
  reportTimer = null;
  send(last, () => process.exit(code));
}

async function setup(msg: Extract<ToVmProcess, { type: 'setup' }>): Promise<void> {
  // This process holds the VM's image locks; they go when it exits, however it ends.
  try {
    locks = lockVmImages(msg.config);
    files = msg.config;
  } catch (e) {
    leave({ type: 'setupFailed', message: e instanceof Error ? e.message : String(e) }, 1);
    return;
  }
  let nics: NicHost[];
  try {
    nics = await createNicHosts(msg.nics, msg.name);
  } catch (e) {
    leave({ type: 'setupFailed', message: e instanceof Error ? e.message : String(e) }, 1);
    return;
  }
  const h = new VmHandle(msg.config, { nics, resourceLimits: msg.resourceLimits, stopTimeoutMs: msg.stopTimeoutMs });
  h.on('output', (data) => send({ type: 'output', data }));
  h.on('warning', (message) => send({ type: 'warning', message }));
  h.on('stats', (text) => send({ type: 'stats', text }));
  h.on('exit', (r) => {
    // A last report, so the daemon's counters end where the VM did.
    report();
    leave({ type: 'exit', code: r.code, reason: r.reason }, 0);
  });
  handle = h;
  // A first report, so the daemon knows the NICs from the moment the VM counts as started.
  report();
  send({ type: 'ready' });
}

function onMessage(msg: ToVmProcess): void {
  if (msg.type === 'setup') {
    void setup(msg);
    return;
  }
  const h = handle;
  if (!h) return;
  switch (msg.type) {
    case 'boot':
      h.start();
      report();
      reportTimer = setInterval(report, REPORT_INTERVAL_MS);
      break;
    case 'input':
      h.sendInput(msg.data);
      break;
    case 'pause':
      if (msg.paused) h.pause();
      else h.resume();
      break;
    case 'credit':
      h.setCredit(rebaseCredit(msg.credit, msg.basis, h.live().instret));
      break;
    case 'requestStats':
      h.requestStats();
      break;
    case 'command':
      h.command(msg.command).then(
        (result) => {
          const frozen = (result as { overlays?: { disk: number; path: string }[] } | null)?.overlays;
          if (frozen && files && locks) {
            // The frozen images are only read now (shared); the overlays are written.
            files = { ...files, disks: disksWithOverlays(files.disks ?? [], frozen) };
            locks.release();
            try {
              locks = lockVmImages(files);
            } catch (e) {
              locks = null;
              send({ type: 'warning', message: `relocking the disks after the snapshot failed: ${e instanceof Error ? e.message : String(e)}` });
            }
          }
          report(); // the device counters the command changed reach the daemon before its reply
          send({ type: 'reply', reply: { id: msg.id, ok: true, result } });
        },
        (e: unknown) => send({ type: 'reply', reply: { id: msg.id, ok: false, error: e instanceof Error ? e.message : String(e) } }),
      );
      break;
    case 'stop':
      void h.stop();
      break;
  }
}

process.on('message', (m: ToVmProcess) => onMessage(m));
process.on('disconnect', () => {
  // The daemon is gone (or done with us): stop the guest briefly, then go.
  if (!handle || !handle.running) process.exit(0);
  void handle.stop().then(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
});

// A VM's GDB stub over WebSocket (GET /v1/vms/NAME/gdb, same authorization
// as the console): binary frames carry the GDB remote protocol's bytes both
// ways. One debugger per VM; the socket closes when the VM stops. The daemon
// acknowledges packets itself (see Acknowledger), as `tsvisor run --gdb` does.

import type { WebSocket } from 'ws';
import type { VmSupervisor } from './vm-supervisor.js';
import type { VmRunner } from './vm-runner.js';
import { Acknowledger } from '../gdb/packet.js';

/** Largest message a debugger may send (GDB packets are at most 16 KiB here). */
export const GDB_MAX_MESSAGE_BYTES = 64 * 1024;
/** Stub output one client may have unsent before it is dropped. */
const GDB_MAX_UNSENT = 4 * 1024 * 1024;
/**
 * Bytes a client may send without the stub answering anything: GDB waits for
 * each reply, so only a flood gets here, and the worker would queue it all.
 */
const GDB_MAX_UNANSWERED = 1024 * 1024;

/** VMs with a debugger attached (one each). */
const attached = new WeakSet<VmRunner>();

/** Why a debugger cannot attach to this VM now, or null. */
export function gdbRefusal(vm: VmSupervisor): string | null {
  if (vm.config.gdb !== true) return `VM '${vm.name}' has no GDB stub (create it with "gdb": true)`;
  const h = vm.handle;
  if (!h || !h.gdbPost) return `VM '${vm.name}' is ${vm.state}, not running`;
  if (attached.has(h)) return `VM '${vm.name}' already has a debugger attached`;
  return null;
}

export function attachGdbSocket(ws: WebSocket, vm: VmSupervisor): void {
  const h = vm.handle!;
  attached.add(h);
  const acks = new Acknowledger();
  let unanswered = 0;
  const onData = (data: Uint8Array) => {
    unanswered = 0;
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount + data.length > GDB_MAX_UNSENT) {
      ws.close(4000, 'debugger too slow');
      return;
    }
    ws.send(data, { binary: true });
  };
  const onState = (s: string) => {
    if (s !== 'running' && s !== 'paused') ws.close(1000, `VM ${s}`);
  };
  h.on('gdb', onData);
  vm.on('state', onState);
  h.gdbPost!({ type: 'connect' });
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    if (ws.readyState !== ws.OPEN) return;
    const buf = new Uint8Array(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
    unanswered += buf.length;
    if (unanswered > GDB_MAX_UNANSWERED) {
      ws.close(4001, 'debugger input not answered by the stub: flood refused');
      ws.terminate();
      return;
    }
    const ack = acks.input(buf);
    if (ack) ws.send(Buffer.from(ack, 'latin1'), { binary: true });
    h.gdbPost!({ type: 'data', data: buf });
  });
  let live = true;
  const detach = () => {
    if (!live) return;
    live = false;
    attached.delete(h);
    h.off('gdb', onData);
    vm.off('state', onState);
    h.gdbPost!({ type: 'disconnect' });
  };
  ws.on('close', detach);
  ws.on('error', detach);
}

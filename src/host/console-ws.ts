// The console over WebSocket: binary frames carry raw console bytes both ways.
// On attach the client first gets the recent output (so it sees the prompt);
// the socket closes when the VM stops. The replay leaves out terminal queries
// (see console-replay.ts), so a terminal does not answer them a second time.

import type { WebSocket } from 'ws';
import type { VmSupervisor } from './vm-supervisor.js';
import { stripTerminalQueries } from './console-replay.js';

export function attachConsoleSocket(ws: WebSocket, vm: VmSupervisor): void {
  const recent = stripTerminalQueries(vm.recentOutput());
  if (recent.length > 0) ws.send(recent, { binary: true });
  const onOutput = (data: Uint8Array) => {
    if (ws.readyState === ws.OPEN) ws.send(data, { binary: true });
  };
  const onState = (s: string) => {
    if (s !== 'running' && s !== 'paused') ws.close(1000, `VM ${s}`);
  };
  vm.on('output', onOutput);
  vm.on('state', onState);
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    vm.sendInput(new Uint8Array(buf));
  });
  const detach = () => {
    vm.off('output', onOutput);
    vm.off('state', onState);
  };
  ws.on('close', detach);
  ws.on('error', detach);
}

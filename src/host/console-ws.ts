// The console over WebSocket: binary frames carry raw console bytes both ways.
// On attach the client first gets the recent output (so it sees the prompt);
// the socket closes when the VM stops.
//
// Nothing a client or the guest does can grow the daemon's memory without
// bound: messages have a maximum size (ws closes with 1009), input the guest
// has not taken yet is bounded per VM, and each client's unsent output is
// bounded; a client over a bound is closed with a code of its own, and the
// other clients of the VM carry on.
//
// A text frame {"type": "resize", "cols": C, "rows": R} is the client's
// terminal size, passed to the guest (hvc0); any other frame is input.
//
// The replay leaves out terminal queries (see console-replay.ts), so a terminal
// does not answer them a second time.

import type { WebSocket } from 'ws';
import type { VmSupervisor } from './vm-supervisor.js';
import { stripTerminalQueries } from './console-replay.js';

/** Largest console message a client may send (bytes). */
export const CONSOLE_MAX_MESSAGE_BYTES = 64 * 1024;
/** Console input per VM the guest has not taken yet; more is refused. */
export const CONSOLE_MAX_PENDING_INPUT = 256 * 1024;
/** Console output one client may have unsent before it is dropped. */
export const CONSOLE_MAX_UNSENT_OUTPUT = 1024 * 1024;
export const DEFAULT_MAX_CONSOLE_CLIENTS = 16;

/** Close codes (4000-4999 is the application's range). */
export const CLOSE_SLOW_READER = 4000;
export const CLOSE_INPUT_BACKLOG = 4001;

/** A closing client that does not answer the close handshake is cut off after this long. */
const CLOSE_GRACE_MS = 5000;

/** A resize message ('bad' when its size is out of range), or null when the frame is something else (then it is input, as before). */
export function parseResize(buf: Buffer): { cols: number; rows: number } | 'bad' | null {
  if (buf.length > 200 || buf[0] !== 0x7b) return null; // '{'
  let msg: unknown;
  try {
    msg = JSON.parse(buf.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null || (msg as { type?: unknown }).type !== 'resize') return null;
  const { cols, rows } = msg as { cols?: unknown; rows?: unknown };
  const dim = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffff;
  return dim(cols) && dim(rows) ? { cols: cols as number, rows: rows as number } : 'bad';
}

function closeWith(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState !== ws.OPEN) return;
  ws.close(code, reason);
  // Read nothing more from it: a flooding client's further messages are not even parsed.
  ws.pause();
  // A client that stopped reading never answers the close frame either.
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}

export function attachConsoleSocket(ws: WebSocket, vm: VmSupervisor): void {
  vm.consoleClients++;
  const recent = stripTerminalQueries(vm.recentOutput());
  if (recent.length > 0) ws.send(recent, { binary: true });
  const onOutput = (data: Uint8Array) => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount + data.length > CONSOLE_MAX_UNSENT_OUTPUT) {
      closeWith(ws, CLOSE_SLOW_READER, `console client too slow: over ${CONSOLE_MAX_UNSENT_OUTPUT} bytes of output unsent`);
      return;
    }
    ws.send(data, { binary: true });
  };
  const onState = (s: string) => {
    if (s !== 'running' && s !== 'paused') ws.close(1000, `VM ${s}`);
  };
  vm.on('output', onOutput);
  vm.on('state', onState);
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (ws.readyState !== ws.OPEN) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!isBinary) {
      const resize = parseResize(buf);
      if (resize === 'bad') return; // a resize the guest cannot take: ignored, never typed
      if (resize) {
        vm.setConsoleSize(resize.cols, resize.rows);
        return;
      }
    }
    if (vm.pendingInputBytes() + buf.length > CONSOLE_MAX_PENDING_INPUT) {
      closeWith(ws, CLOSE_INPUT_BACKLOG, `console input refused: the guest has not taken the last ${CONSOLE_MAX_PENDING_INPUT} bytes`);
      return;
    }
    vm.sendInput(new Uint8Array(buf));
  });
  let attached = true;
  const detach = () => {
    if (!attached) return;
    attached = false;
    vm.consoleClients--;
    vm.off('output', onOutput);
    vm.off('state', onState);
  };
  ws.on('close', detach);
  ws.on('error', detach);
}

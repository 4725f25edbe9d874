// `tsvisor run --gdb tcp:HOST:PORT`: a TCP listener that carries one
// debugger's bytes to and from the VM's GDB stub (which runs in the VM's
// worker, see src/vm/gdb-session.ts). One debugger at a time; a second
// connection is refused while one is attached.

import { createServer, type Server, type Socket } from 'node:net';
import type { GdbPortMessage } from '../vm/protocol.js';
import { Acknowledger } from '../gdb/packet.js';

/** The channel a VM offers a debugger (VmHandle with config.gdb). */
export interface GdbChannel {
  gdbPost(msg: GdbPortMessage): void;
  on(event: 'gdb', listener: (data: Uint8Array) => void): unknown;
}

/** Parse `tcp:HOST:PORT` (HOST defaults to 127.0.0.1; `tcp:PORT` and `:PORT` work too). Null if malformed. */
export function parseGdbAddress(text: string): { host: string; port: number } | null {
  const m = /^(?:tcp:)?(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)?:)?(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  const host = (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, '');
  return { host, port };
}

/** Listen for a debugger; resolves with the server once listening (rejects when the address cannot be used). */
export function listenForGdb(vm: GdbChannel, addr: { host: string; port: number }, log: (line: string) => void): Promise<Server> {
  let client: Socket | null = null;
  /** Bytes sent since the stub last answered: GDB waits for each reply, so only a flood grows this. */
  let unanswered = 0;
  vm.on('gdb', (data) => {
    unanswered = 0;
    client?.write(data);
  });
  const server = createServer((sock) => {
    if (client) {
      sock.end();
      log('a second debugger was refused: one is attached');
      return;
    }
    client = sock;
    unanswered = 0;
    sock.setNoDelay(true);
    vm.gdbPost({ type: 'connect' });
    const acks = new Acknowledger();
    sock.on('data', (data) => {
      unanswered += data.length;
      if (unanswered > 1024 * 1024) {
        log('debugger input not answered by the stub: connection closed');
        sock.destroy();
        return;
      }
      const bytes = new Uint8Array(data);
      const ack = acks.input(bytes);
      if (ack) sock.write(ack, 'latin1');
      vm.gdbPost({ type: 'data', data: bytes });
    });
    const gone = () => {
      if (client !== sock) return;
      client = null;
      vm.gdbPost({ type: 'disconnect' });
    };
    sock.on('close', gone);
    sock.on('error', gone);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => {
      server.off('error', reject);
      server.unref();
      resolve(server);
    });
  });
}

// Attach the user's terminal (or pipes) to a VM's console, QEMU style:
// guest output to stdout, keystrokes to the guest, Ctrl-A as the escape key.

import type { VmExit, VmHandle } from '../vm/vm-handle.js';

const CTRL_A = 0x01;

export const ESCAPE_HELP = [
  'C-a h    print this help',
  'C-a x    exit tsvisor (stops the VM)',
  'C-a s    write a snapshot to --snapshot-dir',
  'C-a C-a  send C-a to the guest',
];

/** What the escape-key state machine wants done, in order. */
export type ConsoleAction =
  | { kind: 'send'; data: Uint8Array }
  | { kind: 'quit' }
  | { kind: 'snapshot' }
  | { kind: 'help' };

/**
 * The Ctrl-A escape handling, kept free of I/O so it can be tested alone.
 * Feed it input chunks; it returns what to do with them.
 */
export class EscapeFilter {
  private armed = false;

  feed(chunk: Uint8Array): ConsoleAction[] {
    const actions: ConsoleAction[] = [];
    let start = 0;
    const flush = (end: number) => {
      if (end > start) actions.push({ kind: 'send', data: chunk.subarray(start, end) });
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.armed) {
        this.armed = false;
        start = i + 1;
        if (b === CTRL_A) {
          actions.push({ kind: 'send', data: Uint8Array.of(CTRL_A) });
        } else if (b === 0x78 /* x */ || b === 0x58 /* X */) {
          actions.push({ kind: 'quit' });
          return actions; // nothing after a quit matters
        } else if (b === 0x73 /* s */ || b === 0x53 /* S */) {
          actions.push({ kind: 'snapshot' });
        } else if (b === 0x68 /* h */ || b === 0x48 /* H */ || b === 0x3f /* ? */) {
          actions.push({ kind: 'help' });
        }
        // Any other key after C-a is dropped, as QEMU does.
      } else if (b === CTRL_A) {
        flush(i);
        this.armed = true;
        start = i + 1;
      }
    }
    flush(chunk.length);
    return actions;
  }
}

/** The bits of a process's stdio the console needs (so tests can pass streams). */
export interface ConsoleStdio {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface AttachOptions {
  /** Install signal and uncaught-error handlers on `process` (the CLI does; tests don't). */
  handleProcessEvents?: boolean;
  /** Take a snapshot (Ctrl-A S); resolves with a line for the user. Absent: the key says how to enable it. */
  snapshot?: () => Promise<string>;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/**
 * Run the console until the VM exits (guest poweroff, Ctrl-A X, a signal).
 * Resolves with the exit status tsvisor should end with. The VM must be started
 * by the caller (before or after attaching).
 */
export async function attachConsole(
  vm: VmHandle,
  stdio: ConsoleStdio = process,
  options: AttachOptions = {},
): Promise<number> {
  const { stdin, stdout, stderr } = stdio;
  const tty = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  const nl = tty ? '\r\n' : '\n';
  const filter = new EscapeFilter();
  let rawMode = false;
  let signalled: NodeJS.Signals | null = null;
  let quitting = false;

  const restoreTerminal = () => {
    if (rawMode) {
      rawMode = false;
      try {
        stdin.setRawMode?.(false);
      } catch {
        // The terminal may already be gone (hangup); nothing left to restore.
      }
    }
  };

  const quit = () => {
    if (quitting) return;
    quitting = true;
    void vm.stop();
  };

  const onOutput = (data: Uint8Array) => {
    stdout.write(data);
  };
  const onWarning = (message: string) => {
    stderr.write(`${nl}tsvisor: ${message}${nl}`);
  };

  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk);
    for (const action of filter.feed(bytes)) {
      switch (action.kind) {
        case 'send':
          vm.sendInput(action.data);
          break;
        case 'help':
          stderr.write(nl + ESCAPE_HELP.join(nl) + nl);
          break;
        case 'quit':
          quit();
          break;
        case 'snapshot':
          if (!options.snapshot) stderr.write(`${nl}tsvisor: snapshots need --snapshot-dir DIR${nl}`);
          else void options.snapshot().then((m) => stderr.write(`${nl}tsvisor: ${m}${nl}`));
          break;
      }
    }
  };
  // On EOF from a pipe the VM keeps running: the guest may still be working on
  // what it was sent and will power off by itself.
  const onEnd = () => {};
  const onStdinError = () => {};

  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      // Second signal: the user means it. Leave now, terminal restored.
      restoreTerminal();
      process.exit(128 + (SIGNAL_NUMBERS[sig] ?? 1));
    }
    signalled = sig;
    quit();
  };
  const onUncaught = (err: unknown) => {
    restoreTerminal();
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`tsvisor: internal error: ${msg.split('\n')[0]}\n`);
    if (process.env.TSVISOR_DEBUG === '1' && err instanceof Error && err.stack) {
      process.stderr.write(err.stack + '\n');
    }
    process.exit(1);
  };
  const onProcessExit = () => restoreTerminal();

  vm.on('output', onOutput);
  vm.on('warning', onWarning);
  if (options.handleProcessEvents) {
    for (const sig of Object.keys(SIGNAL_NUMBERS) as NodeJS.Signals[]) process.on(sig, onSignal);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    process.on('exit', onProcessExit);
  }

  try {
    if (tty) {
      stdin.setRawMode!(true);
      rawMode = true;
    }
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.on('error', onStdinError);
    stdin.resume();

    const result: VmExit = await vm.exited;
    if (signalled) {
      return 128 + (SIGNAL_NUMBERS[signalled] ?? 1);
    }
    if (result.code !== 0) {
      stderr.write(`${nl}tsvisor: VM exited with status ${result.code}: ${result.reason}${nl}`);
    }
    return result.code;
  } finally {
    restoreTerminal();
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.off('error', onStdinError);
    stdin.pause();
    vm.off('output', onOutput);
    vm.off('warning', onWarning);
    if (options.handleProcessEvents) {
      for (const sig of Object.keys(SIGNAL_NUMBERS) as NodeJS.Signals[]) process.off(sig, onSignal);
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
      process.off('exit', onProcessExit);
    }
  }
}

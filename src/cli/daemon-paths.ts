// Where the daemon keeps its state and socket by default; the client uses the
// same rules so `tsvisor serve` and `tsvisor ls` meet without options.

import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultStateDir(env = process.env): string {
  if (env.TSVISOR_STATE_DIR) return env.TSVISOR_STATE_DIR;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'tsvisor');
  return join(homedir(), '.local', 'state', 'tsvisor');
}

/** $XDG_RUNTIME_DIR/tsvisor.sock (a per-user tmpfs), else tsvisor.sock in the state directory. */
export function defaultSocketPath(stateDir?: string, env = process.env): string {
  if (env.TSVISOR_SOCKET) return env.TSVISOR_SOCKET;
  if (!stateDir && env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'tsvisor.sock');
  return join(stateDir ?? defaultStateDir(env), 'tsvisor.sock');
}

// What every command-line module shares: the error types that end in one
// `tsvisor: ...` line, the output streams, and parseArgs with readable errors.
// A leaf module, so the commands need not import main.ts (which imports them).

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the user's side: shown as one line, no stack trace. */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/** A command line that does not make sense (exit status 2). */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/** Write streams main() prints to (replaceable in tests). */
export interface MainIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** parseArgs with its errors turned into one-line usage errors. */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const msg = String(err.message ?? e);
    switch (err.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
        const name = /'([^']+)'/.exec(msg)?.[1] ?? '?';
        throw new UsageError(`unknown option '${name}' for '${command}' (try '${command} --help')`);
      }
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
        const name = /'(-[^' ]+)/.exec(msg)?.[1];
        if (name && /argument missing/.test(msg)) throw new UsageError(`option ${name} needs a value`);
        // `--smp -1`: a value that starts with a dash is read as another option.
        if (name && /ambiguous/.test(msg)) throw new UsageError(`option ${name} needs a value; a value starting with '-' is written ${name}=VALUE`);
        if (name) throw new UsageError(`option ${name} does not take a value`);
        throw new UsageError(msg);
      }
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
        const name = /'([^']*)'/.exec(msg)?.[1] ?? '?';
        throw new UsageError(`unexpected argument '${name}' for '${command}' (try '${command} --help')`);
      }
      default:
        throw new UsageError(msg);
    }
  }
}

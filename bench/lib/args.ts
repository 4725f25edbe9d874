// Command-line options of a benchmark: node's parseArgs, strict, with a bad
// option turned into the benchmark's own usage error (exit 2) instead of a stack.

import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseBenchArgs<O extends Options>(argv: string[], options: O, fail: (msg: string) => never) {
  try {
    return parseArgs({ args: argv, options, strict: true }).values;
  } catch (e) {
    return fail((e as Error).message);
  }
}

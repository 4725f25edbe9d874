// What counts as a finding: an exception of a type the module does not document
// as its error for bad input, or a broken invariant (thrown as FuzzInvariantError).

export class FuzzInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FuzzInvariantError';
  }
}

/** Throw a FuzzInvariantError unless `cond` holds. */
export function check(cond: boolean, message: string): void {
  if (!cond) throw new FuzzInvariantError(message);
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Run `fn`; an exception of one of the documented `allowed` classes is bad input handled well, anything else is rethrown. */
export function allowing<T>(allowed: readonly ErrorClass[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return undefined;
    throw e;
  }
}

export async function allowingAsync<T>(allowed: readonly ErrorClass[], fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (allowed.some((c) => e instanceof c)) return undefined;
    throw e;
  }
}

// One operation at a time per key: each run() waits for the ones queued
// before it under the same key, whether they succeeded or failed. Keys with
// nothing queued are forgotten, so the map does not grow with names used once.

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(() => fn());
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with an operation running or queued (for tests and metrics). */
  get busyKeys(): number {
    return this.tails.size;
  }
}

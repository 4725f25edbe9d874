// Two daemons on loopback for migration tests: a source and a destination that
// share an images directory, each with its own token; and a migration run to its end.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { api, startTestDaemon, until, type TestDaemon } from '../daemon-helpers.js';

const tokens = new WeakMap<TestDaemon, string>();

/** Starts daemons `a` and `b` before the file's tests and stops them after. */
export function daemonPair(): { a: TestDaemon; b: TestDaemon } {
  const pair = {} as { a: TestDaemon; b: TestDaemon };
  before(async () => {
    pair.a = await startTestDaemon({ memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: 'token-a-0123456789' });
    pair.b = await startTestDaemon({ memoryBudgetMiB: 1024, listen: { host: '127.0.0.1', port: 0 }, token: 'token-b-0123456789', imagesDir: pair.a.images });
    tokens.set(pair.a, 'token-a-0123456789');
    tokens.set(pair.b, 'token-b-0123456789');
  });
  after(async () => {
    await pair.b?.cleanup();
    await pair.a?.cleanup();
  });
  return pair;
}

export const urlOf = (d: TestDaemon) => `http://127.0.0.1:${d.tcp!.port}`;
export const tokenOf = (d: TestDaemon) => tokens.get(d)!;

/** Migrates `name` from one daemon of the pair to the other; resolves with the final status. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function migrateAndWait(from: TestDaemon, to: TestDaemon, name: string, extra: Record<string, unknown> = {}): Promise<any> {
  const r = await api(from, 'POST', `/v1/vms/${name}/migrate`, { to: urlOf(to), token: tokenOf(to), ...extra });
  assert.equal(r.status, 202, r.text);
  let st: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  await until('the migration to end', async () => {
    st = (await api(from, 'GET', `/v1/vms/${name}/migrate`)).json;
    return ['completed', 'failed', 'cancelled'].includes(st?.phase);
  }, 300_000, 100);
  return st;
}

// Live migration of a multi-hart VM between two real daemons on loopback
// (shared images directory), with a tiny kernel that starts both harts and
// spins on each: at the destination both harts are started and both keep
// counting (a hart left behind stopped would not), the VM's instruction count
// goes on from where it was, and it comes back the same way; once with the
// harts taking turns on the VM's thread, once with each on a thread of its own
// (hartThreads: they park for each migration step and resume).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { api, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';
import { daemonPair, migrateAndWait } from './lib/migrate-pair.js';

const pair = daemonPair();
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const stats = async (d: TestDaemon, name: string): Promise<any> => (await api(d, 'GET', `/v1/vms/${name}/stats`)).json;

/** Both harts started and each ran `n` more instructions than in `since`. */
async function bothHartsRun(d: TestDaemon, name: string, n: number): Promise<void> {
  const since = (await stats(d, name)).harts as { instructions: number }[];
  await until(`both harts of ${name} to run`, async () => {
    const h = (await stats(d, name)).harts as { state: string; instructions: number }[];
    return h.length === 2 && h.every((x, i) => x.state === 'started' && x.instructions > (since[i]?.instructions ?? 0) + n);
  }, 60_000, 100);
}

for (const hartThreads of [false, true]) {
  test(`a 2-hart VM moves to the other daemon and back with both harts running (${hartThreads ? 'each hart on a thread of its own' : 'harts taking turns'})`, { timeout: budget(600_000) }, async () => {
    const { a, b } = pair;
    assert.equal((await api(a, 'POST', '/v1/vms', { name: 'pair', memory: 32, kernel: 'smpspin', cpus: 2, hartThreads })).status, 201);
    assert.equal((await api(a, 'POST', '/v1/vms/pair/start')).status, 200);
    await bothHartsRun(a, 'pair', 1e6);
    const before = (await stats(a, 'pair')).instructions as number;
    const st = await migrateAndWait(a, b, 'pair');
    assert.equal(st.phase, 'completed', JSON.stringify(st));
    assert.equal((await api(a, 'GET', '/v1/vms/pair')).status, 404);
    const there = await api(b, 'GET', '/v1/vms/pair');
    assert.equal(there.json?.state, 'running', there.text);
    assert.equal(there.json?.config.cpus, 2, 'the definition keeps its hart count');
    assert.ok((await stats(b, 'pair')).instructions >= before, 'the instruction count went on (not a fresh boot)');
    // Per-hart counters start again with the destination's worker; both harts count there.
    await bothHartsRun(b, 'pair', 1e6);

    const back = await migrateAndWait(b, a, 'pair');
    assert.equal(back.phase, 'completed', JSON.stringify(back));
    await bothHartsRun(a, 'pair', 1e6);
    assert.equal((await api(a, 'DELETE', '/v1/vms/pair?force=true')).status, 204);
  });
}

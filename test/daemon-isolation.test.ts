// Fault isolation: among several VMs, one whose worker throws (injected), one
// whose worker hangs (injected: it stops reporting), one whose worker runs out
// of heap (injected), and one whose guest kernel panics are all marked failed
// with their reasons, while a booted guest keeps answering on its console and
// the daemon keeps serving. Also the restart policy (on-failure, maxRetries).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

let d: TestDaemon;
before(async () => {
  // A smaller worker heap than the default so the injected heap exhaustion is quick.
  d = await startTestDaemon({ withGuest: true, cpus: 2, debugFaults: true, hangTimeoutMs: 45_000, workerMaxHeapMiB: 512 });
});
after(async () => {
  await d?.cleanup();
});

async function createAndStart(body: Record<string, unknown>): Promise<void> {
  const r = await api(d, 'POST', '/v1/vms', body);
  assert.equal(r.status, 201, r.text);
  const s = await api(d, 'POST', `/v1/vms/${String(body.name)}/start`);
  assert.equal(s.status, 200, s.text);
}

async function failedWith(name: string, re: RegExp): Promise<void> {
  // Generous: the hang detector itself waits 45 s (a booting guest on a loaded host can
  // go 10 s without reporting progress, and must not be taken for hung).
  await until(`${name} failed`, async () => (await api(d, 'GET', `/v1/vms/${name}`)).json.state === 'failed', 180_000, 100);
  const vm = (await api(d, 'GET', `/v1/vms/${name}`)).json;
  assert.match(vm.lastFailure, re, `${name}: ${vm.lastFailure}`);
  assert.equal(d.host.vms.get(name)!.handle, null, `${name}: worker released`);
}

test('crashing, hanging, out-of-memory and panicking VMs fail alone', { timeout: budget(600_000) }, async () => {
  await createAndStart({ name: 'good', memory: 128, kernel: 'vmlinux', initrd: 'initrd', deterministic: true });
  const con = await ConsoleClient.open(d.socketPath, 'good');

  await createAndStart({ name: 'crash', memory: 16, kernel: 'spin', debug: { failAfterMs: 300 }, restart: { policy: 'on-failure', maxRetries: 1 } });
  await createAndStart({ name: 'hang', memory: 16, kernel: 'idle', debug: { hangAfterMs: 300 } });
  await createAndStart({ name: 'oom', memory: 16, kernel: 'idle', debug: { oomAfterMs: 300 } });
  // 64 MiB is too little for the Debian kernel: it panics early in boot (shown with earlycon).
  await createAndStart({ name: 'panic', memory: 64, kernel: 'vmlinux', initrd: 'initrd', append: 'console=ttyS0 earlycon=sbi', deterministic: true });

  await failedWith('panic', /^kernel panic$/);
  await failedWith('hang', /^hung: no progress reported/);
  await failedWith('oom', /out of memory|ERR_WORKER_OUT_OF_MEMORY|heap/i);
  // on-failure with maxRetries 1: restarted once, then left failed.
  await until('crash restarted once', async () => (await api(d, 'GET', '/v1/vms/crash')).json.restarts === 1, 30_000, 100);
  await failedWith('crash', /injected fault/);
  await new Promise((r) => setTimeout(r, 1500));
  const crash = (await api(d, 'GET', '/v1/vms/crash')).json;
  assert.equal(crash.state, 'failed');
  assert.equal(crash.restarts, 1, 'no restart beyond maxRetries');

  // The healthy guest was never disturbed: it boots and answers.
  await con.waitFor(READY_LINE, 200_000);
  await con.waitFor('# ', 60_000, con.output.indexOf(READY_LINE));
  const mark = con.output.length;
  con.send('echo $((6*7))\n');
  await con.waitFor(/\r?\n42\r?\n/, 60_000, mark);
  assert.equal((await api(d, 'GET', '/v1/vms/good')).json.state, 'running');
  con.close();

  const host = (await api(d, 'GET', '/v1/host/stats')).json;
  assert.equal(host.byState.failed, 4);
  assert.equal(host.byState.running, 1);
  const metrics = (await api(d, 'GET', '/metrics')).text;
  assert.match(metrics, /tsvisor_vm_state\{vm="panic",state="failed"\} 1/);

  // A failed VM can be started again (it fails again here, the fault is in its definition).
  const again = await api(d, 'POST', '/v1/vms/panic/start');
  assert.equal(again.status, 200, again.text);
  await failedWith('panic', /^kernel panic$/);
});

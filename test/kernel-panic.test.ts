// Kernel panics come from a channel guest programs cannot forge: the VMM's
// breakpoint on the kernel's panic() (its address from the System.map of the
// default guest). A guest program that prints the panic text to the console
// or the kernel log leaves the VM running; a real panic (sysrq crash, or no
// root file system) fails it, with the translator on and off, under the
// daemon and `tsvisor run`. Without a System.map, the stall watch catches the
// panicked kernel instead.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { ensureDefaultGuest, type DefaultGuest } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const BOOT_MS = 8 * 60_000;

let guest: DefaultGuest;
let d: TestDaemon;
before(async () => {
  guest = await ensureDefaultGuest({ progress: false, log: () => {} });
  d = await startTestDaemon({ withGuest: true, cpus: 1 });
});
after(async () => {
  await d?.cleanup();
});

async function vm(name: string): Promise<{ state: string; lastFailure: string | null }> {
  return (await api(d, 'GET', `/v1/vms/${name}`)).json;
}

async function createAndStart(body: Record<string, unknown>): Promise<void> {
  const r = await api(d, 'POST', '/v1/vms', body);
  assert.equal(r.status, 201, r.text);
  const s = await api(d, 'POST', `/v1/vms/${String(body.name)}/start`);
  assert.equal(s.status, 200, s.text);
}

test('daemon: panic text printed by a guest program does not fail the VM; a sysrq crash does (translator on)', { timeout: budget(BOOT_MS + 180_000) }, async (t) => {
  if (!guest.systemMap) return t.skip('the default guest has no System.map (it could not be fetched)');
  await createAndStart({ name: 'forge', memory: 256, kernel: 'vmlinux', initrd: 'initrd', deterministic: true });
  const con = await ConsoleClient.open(d.socketPath, 'forge');
  await con.waitFor(READY_LINE, BOOT_MS);
  await con.waitFor('# ', 60_000, con.output.indexOf(READY_LINE));
  let mark = con.output.length;
  // The marker is split in the command so only the output matches.
  con.send("echo 'Kernel panic - not syncing: forged' > /dev/console; echo 'Kernel panic - not syncing: forged' > /dev/kmsg; echo forged-''done\n");
  await con.waitFor(/\r?\nforged-done\r?\n/, 60_000, mark);
  assert.match(con.output.slice(mark), /Kernel panic - not syncing: forged\r?\n(.|\n)*Kernel panic - not syncing: forged/, 'both forged lines reached the console');
  // Give a (wrong) console scan every chance to fire, then check the guest still answers.
  await delay(2000);
  mark = con.output.length;
  con.send('echo $((6*7))\n');
  await con.waitFor(/\r?\n42\r?\n/, 60_000, mark);
  assert.equal((await vm('forge')).state, 'running');

  mark = con.output.length;
  con.send('echo c > /proc/sysrq-trigger\n');
  await until('forge failed', async () => (await vm('forge')).state === 'failed', 120_000, 100);
  assert.equal((await vm('forge')).lastFailure, 'kernel panic');
  // The kernel printed its own message before the VM ended.
  assert.match(con.output.slice(mark), /Kernel panic - not syncing: sysrq triggered crash/);
  con.close();
});

test('daemon: a kernel that cannot mount a root file system panics and fails the VM (translator off)', { timeout: budget(BOOT_MS + 60_000) }, async (t) => {
  if (!guest.systemMap) return t.skip('the default guest has no System.map (it could not be fetched)');
  await createAndStart({ name: 'noroot', memory: 256, kernel: 'vmlinux', deterministic: true, jit: false });
  await until('noroot failed', async () => (await vm('noroot')).state === 'failed', BOOT_MS, 200);
  assert.equal((await vm('noroot')).lastFailure, 'kernel panic');
  const log = (await api(d, 'GET', '/v1/vms/noroot/log')).text;
  assert.match(log, /Kernel panic - not syncing: VFS: Unable to mount root fs/);
});

/** Run the CLI to its end; `input` is typed once the guest's shell is ready. */
function runCli(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'run', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let typed = false;
    const killer = setTimeout(() => child.kill('SIGKILL'), BOOT_MS + 120_000);
    child.stdin.on('error', () => {});
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString('latin1');
      const at = stdout.indexOf(READY_LINE);
      if (input !== undefined && !typed && at >= 0 && stdout.indexOf('# ', at) >= 0) {
        typed = true;
        child.stdin.write(input);
      }
    });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('latin1')));
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

for (const jit of ['on', 'off']) {
  test(`tsvisor run: a kernel panic ends the VM with status 1 and "kernel panic" (translator ${jit})`, { timeout: budget(BOOT_MS + 180_000) }, async (t) => {
    if (!guest.systemMap) return t.skip('the default guest has no System.map (it could not be fetched)');
    // No initramfs and no disk: the kernel panics when it finds no root file system.
    const r = await runCli(['--kernel', guest.kernel, '--deterministic', '--net', 'none', '--jit', jit, '--mem', '256M']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /VM exited with status 1: kernel panic/);
    assert.match(r.stdout, /Kernel panic - not syncing: VFS: Unable to mount root fs/);
  });
}

test('tsvisor run without a System.map: the panicked kernel is failed as hung by the stall watch', { timeout: budget(BOOT_MS + 180_000) }, async () => {
  const r = await runCli(
    ['--kernel', guest.kernel, '--initrd', guest.initrd, '--system-map', 'none', '--stall-timeout', '5', '--deterministic', '--net', 'none', '--mem', '256M'],
    'echo c > /proc/sysrq-trigger\n',
  );
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /VM exited with status 1: hung: no program ran and the CPU never idled/);
  assert.match(r.stdout, /Kernel panic - not syncing: sysrq triggered crash/);
});

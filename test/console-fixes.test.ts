// Console bugs of issue 17, checked against a real daemon booting the default
// guest (Debian kernel, busybox initramfs) through the console WebSocket:
// the replay sent on attach carries no terminal queries (bug 1), keys sent
// while the VM is paused reach the guest after resume (bug 2), and Ctrl-C
// stops a command in the console shell, whose children no longer start with
// SIGINT/SIGQUIT ignored (bug 4), and plain `poweroff` still ends it. Plus the
// replay filter on its own.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { api, ConsoleClient, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { stripTerminalQueries } from '../src/host/console-replay.js';
import { budget } from './lib/budget.js';

/** Everything a fresh console connection receives, the replay included (listening before the upgrade completes). */
async function attachAndCollect(socketPath: string, name: string): Promise<{ text: () => string; close: () => void }> {
  const ws = new WebSocket(`ws+unix://${socketPath}:/v1/vms/${name}/console`);
  let out = '';
  ws.on('message', (b: Buffer) => (out += b.toString('latin1')));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { text: () => out, close: () => ws.terminate() };
}

const strip = (s: string) => stripTerminalQueries(Buffer.from(s, 'latin1')).toString('latin1');

describe('replay filter', () => {
  test('drops the sequences a terminal answers, keeps the rest byte for byte', () => {
    assert.equal(strip('~ # \x1b[6n'), '~ # ');
    assert.equal(strip('a\x1b[5nb\x1b[?6nc\x1b[cd\x1b[>0ce\x1b[=cf'), 'abcdef');
    assert.equal(strip('x\x1b[?2004$py'), 'xy'); // DECRQM
    assert.equal(strip('x\x1b[18ty\x1b[8;24;80tz'), 'xy\x1b[8;24;80tz'); // report asked, resize kept
    assert.equal(strip('x\x1b]11;?\x07y\x1b]10;?\x1b\\z'), 'xyz'); // colour queries
    assert.equal(strip('x\x1bP$qm\x1b\\y'), 'xy'); // DECRQSS
    assert.equal(strip('x\x1bZy'), 'xy'); // DECID
    // Everything that only draws stays.
    const drawing = '\x1b[1;32mgreen\x1b[0m \x1b[2J\x1b[H\x1b[?25l\x1b]0;title\x07\x1b(B\r\n_';
    assert.equal(strip(drawing), drawing);
    // A query cut off at the end is dropped; one cut off at the start is just text.
    assert.equal(strip('prompt \x1b[6'), 'prompt ');
    assert.equal(strip('prompt \x1b'), 'prompt ');
    assert.equal(strip('6n# '), '6n# ');
    const plain = Buffer.from('no escapes at all');
    assert.equal(stripTerminalQueries(plain), plain);
  });
});

describe('console of the default guest', () => {
  let d: TestDaemon;
  let c: ConsoleClient | undefined;
  before(async () => {
    d = await startTestDaemon({ withGuest: true, memoryBudgetMiB: 1024 });
    const r = await api(d, 'POST', '/v1/vms', { name: 'g', kernel: 'vmlinux', initrd: 'initrd', memory: 256 });
    assert.equal(r.status, 201, r.text);
    assert.equal((await api(d, 'POST', '/v1/vms/g/start')).status, 200);
    c = await ConsoleClient.open(d.socketPath, 'g');
  });
  after(async () => {
    c?.close();
    await d?.cleanup();
  });

  /** Type a line and wait for what it prints (the echo of the line itself does not count). */
  async function run(line: string, expect: string | RegExp, ms = 120_000): Promise<void> {
    const from = c!.output.length;
    c!.send(`${line}\r`);
    await c!.waitFor(expect, ms, from);
  }

  test('the guest comes up and busybox asks the terminal for the cursor position', { timeout: budget(600_000) }, async () => {
    await c!.waitFor('tsvisor guest ready', 480_000);
    // Keys sent before the shell's first prompt may be flushed by it.
    await c!.waitFor(/# (\x1b\[6n)?$/, 60_000, c!.output.indexOf('tsvisor guest ready'));
    await run('echo up-$((6*7))', 'up-42');
    // The query the replay must not carry: busybox's line editor sends it at each prompt.
    await until('a cursor-position query from the guest', () => c!.output.includes('\x1b[6n'), 30_000);
  });

  test('bug 1: re-attaching replays the output without terminal queries', { timeout: budget(120_000) }, async () => {
    // The prompt after the output too: on a loaded host it comes a while after the line.
    await run('echo marker-$((2*3))', /marker-6[\s\S]*# /);
    const again = await attachAndCollect(d.socketPath, 'g');
    try {
      await until('the replay', () => /marker-6[\s\S]*# (\x1b\[6n)?$/.test(again.text()), 30_000);
      assert.ok(!again.text().includes('\x1b[6n'), 'the replay carries a cursor-position query');
      assert.ok(!/\x1b\[[0-9;?>=]*[nc]/.test(again.text()), 'the replay carries a status or attribute query');
      assert.match(again.text(), /# $/, 'the replay ends with the prompt');
    } finally {
      again.close();
    }
  });

  test('bug 2: keys sent while the VM is paused arrive after resume', { timeout: budget(120_000) }, async () => {
    assert.equal((await api(d, 'POST', '/v1/vms/g/pause')).status, 200);
    const from = c!.output.length;
    c!.send('echo paused-$((5*5))\r');
    assert.equal((await api(d, 'POST', '/v1/vms/g/resume')).status, 200);
    await c!.waitFor('paused-25', 60_000, from);
  });

  test('bug 4: commands from the console shell have default signals, Ctrl-C stops them', { timeout: budget(180_000) }, async () => {
    // grep is a child of the console shell: before the fix it had SIGINT and SIGQUIT ignored (0000000000000006).
    await run('grep SigIgn /proc/self/status', /SigIgn:\s+0000000000000000/);
    const from = c!.output.length;
    c!.send("sh -c 'echo sleeping-$((3*3)); exec sleep 100'\r");
    await c!.waitFor('sleeping-9', 60_000, from);
    c!.send('\x03');
    // Well under the 100 s the sleep would take: only Ctrl-C gets the shell back this soon.
    await run('echo back-$((6*7))', 'back-42', 60_000);
  });

  test('plain poweroff (now a script, not a signal to init) still ends the VM cleanly', { timeout: budget(120_000) }, async () => {
    c!.send('poweroff\r');
    await until('the VM stopped', async () => (await api(d, 'GET', '/v1/vms/g')).json?.state !== 'running', 60_000, 200);
    const vm = (await api(d, 'GET', '/v1/vms/g')).json;
    assert.equal(vm.state, 'stopped', JSON.stringify(vm));
    assert.equal(vm.lastFailure, null);
  });
});

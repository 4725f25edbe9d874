// The qcow2-backing escape, with the real guest. A guest that owns a raw disk
// writes onto it (dd, in the guest) the first sectors of a qcow2 image made by
// qemu-img whose backing file is a host file of this test's own. If the disk
// were ever opened as qcow2 afterwards, the guest would read that host file.
//  - daemon: the VM is killed and started again; the disk stays raw (its format
//    was fixed when the VM was created), so the guest sees its own bytes;
//  - tsvisor run --disk PATH (no format=): the format is guessed as raw, and
//    the write of the qcow2 magic fails in the guest with an I/O error, with
//    nothing written (other writes to the first sector still work).
// The header comes in on a second, read-only disk. Three boots of about a
// minute; every wait is generous.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';
import { ChildConsole } from './lib/vm-console.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const haveQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
const skip = haveQemuImg ? false : 'qemu-img is not installed (qemu-utils)';
const MARK = `TSVISOR-SECRET-${randomBytes(6).toString('hex')}`;
/** Matches the command's answer, not its echo (the shell splits the word with ""). */
const GREP_MARK = `${MARK.slice(0, 11)}""${MARK.slice(11)}`;

const dir = mkdtempSync(join(tmpdir(), 'tsvisor-escape-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function qemuImg(...args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A host file with a known secret, and a 64 KiB raw "payload" disk that starts
 * with a qcow2 image naming that file as its raw backing file.
 */
function makeAttack(where: string): { secret: string; payload: string } {
  const secret = join(dir, `secret-${Math.random().toString(36).slice(2)}`);
  writeFileSync(secret, `${MARK}\n`);
  const mal = join(dir, `mal-${Math.random().toString(36).slice(2)}.qcow2`);
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', '-b', secret, '-F', 'raw', mal, '1M');
  const header = readFileSync(mal);
  assert.ok(header.length <= 2048, `the qcow2 image fits in 4 sectors (${header.length} bytes)`);
  const payload = join(where, 'payload.img');
  const buf = Buffer.alloc(64 * 1024);
  header.copy(buf);
  writeFileSync(payload, buf);
  return { secret, payload };
}

let d: TestDaemon | undefined;
after(async () => {
  await d?.cleanup();
});

test('daemon: a guest that writes a qcow2 header to its raw disk still sees a raw disk after a restart', { timeout: budget(900_000), skip }, async () => {
  d = await startTestDaemon({ withGuest: true, cpus: 1 });
  const { payload } = makeAttack(d.images);
  const victim = join(d.images, 'victim.raw');
  qemuImg('create', '-q', '-f', 'raw', victim, '1M');
  const body = {
    name: 'victim', memory: 128, kernel: 'vmlinux', initrd: 'initrd', deterministic: true,
    disks: [{ path: 'victim.raw' }, { path: 'payload.img', format: 'raw', readonly: true }],
  };
  const created = await api(d, 'POST', '/v1/vms', body);
  assert.equal(created.status, 201, created.text);

  const boot = async (): Promise<ConsoleClient> => {
    const s = await api(d!, 'POST', '/v1/vms/victim/start');
    assert.equal(s.status, 200, s.text);
    const con = await ConsoleClient.open(d!.socketPath, 'victim');
    await con.waitFor(READY_LINE, 400_000);
    await con.waitFor('# ', 60_000, con.output.indexOf(READY_LINE));
    return con;
  };
  const first = await boot();
  let mark = first.output.length;
  first.send('dd if=/dev/vdb of=/dev/vda bs=512 count=4 conv=fsync 2>/dev/null; echo WROTE-$((40+2))-$?\n');
  await first.waitFor(/WROTE-42-0/, 120_000, mark);
  // The attack is real: the file now is a qcow2 image whose backing file is the secret.
  const info = JSON.parse(qemuImg('info', '--output=json', '-U', '-f', 'qcow2', victim));
  assert.match(String(info['backing-filename']), /secret-/);
  first.close();
  const k = await api(d, 'POST', '/v1/vms/victim/kill');
  assert.equal(k.status, 200, k.text);
  await until('the VM ended', () => d!.host.vms.get('victim')!.handle === null, 30_000);

  const second = await boot();
  mark = second.output.length;
  second.send(`echo HEAD=$(head -c 4 /dev/vda | od -An -tx1 | tr -d ' \\n') HITS=$(grep -c ${GREP_MARK} /dev/vda)\n`);
  await second.waitFor(/HEAD=\w* HITS=\d+/, 120_000, mark);
  const answer = /HEAD=(\w*) HITS=(\d+)/.exec(second.output.slice(mark))!;
  assert.equal(answer[1], '514649fb', 'the guest reads back its own bytes (the qcow2 magic), raw');
  assert.equal(answer[2], '0', 'the host file is not visible to the guest');
  assert.ok(!second.output.includes(MARK), 'the secret never reaches the console');
  second.close();
  assert.equal((await api(d, 'DELETE', '/v1/vms/victim?force=true')).status, 204);
  await d.cleanup();
  d = undefined;
});

test('tsvisor run: a guessed-raw disk refuses a guest write of the qcow2 magic to its first sector', { timeout: budget(600_000), skip }, async () => {
  const { payload } = makeAttack(dir);
  const victim = join(dir, 'victim2.raw');
  qemuImg('create', '-q', '-f', 'raw', victim, '1M');
  const child = spawn(process.execPath, [CLI, 'run', '--deterministic', '--mem', '128M', '--disk', victim, '--disk', `${payload},format=raw,readonly=on`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const c = new ChildConsole(child);
  try {
    await c.waitFor(/tsvisor guest ready/, 400_000);
    await c.waitFor(/# /, 60_000);
    // An ordinary write to sector 0 works...
    const plain = await c.run("dd if=/dev/zero bs=512 count=1 2>/dev/null | tr '\\0' x | dd of=/dev/vda bs=512 conv=fsync 2>/dev/null", 120_000);
    assert.match(plain, /status 0/);
    // ...the qcow2 header does not: the guest sees an I/O error.
    const evil = await c.run('dd if=/dev/vdb of=/dev/vda bs=512 count=4 conv=fsync 2>/dev/null', 120_000);
    assert.match(evil, /status [1-9]/, 'dd reports the failed write');
    assert.match(c.out, /tsvisor: warning: disk .*victim2\.raw has no format=; it was guessed as raw, and guest writes that would make it look like qcow2 are refused/);
    c.type('poweroff -f');
    assert.equal(await c.exited, 0);
  } finally {
    child.kill('SIGKILL');
  }
  const head = readFileSync(victim).subarray(0, 2048);
  assert.equal(head.subarray(0, 512).toString('latin1'), 'x'.repeat(512), 'the plain write landed');
  assert.ok(head.subarray(512).every((b) => b === 0), 'nothing of the qcow2 image was written');
});

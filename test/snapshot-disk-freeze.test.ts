// Freezing the disks at a snapshot (`tsvisor snapshot VM DIR --disk-overlay`,
// PUT /v1/vms/NAME/snapshot {"diskOverlay": true}) against a real daemon and the
// default guest with two disks made by qemu-img: a qcow2 and a raw one. The
// guest writes and fsyncs a record on each before the snapshot, and another
// (plus an overwrite of the first) after it. The running VM goes on writing
// new overlays; a clone of the snapshot, started while the original still runs,
// sees the disks as they were at the snapshot; the frozen images hold exactly
// the records from before; `qemu-img check` passes on every qcow2 image.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, startTestDaemon, type TestDaemon } from './daemon-helpers.js';
import { budget } from './lib/budget.js';

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));

let d: TestDaemon;
before(async () => {
  d = await startTestDaemon({ memoryBudgetMiB: 1024, cpus: 1, withGuest: true, hangTimeoutMs: 120_000 });
});
after(async () => {
  await d?.cleanup();
});

function qemuImg(args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function run(c: ConsoleClient, cmd: string, marker: string): Promise<string> {
  const from = c.output.length;
  c.send(`${cmd}\n`);
  try {
    await c.waitFor(new RegExp(`${marker}[^\\n]*\\n`), 600_000, from);
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\nconsole:\n${c.output.slice(-3000)}`);
  }
  const text = c.output.slice(from);
  return text.slice(text.search(new RegExp(marker))).split('\n')[0]!;
}

/** What the guest's disk holds in sectors 0 and 8, read past its page cache. */
const READ_DISKS = 'sync; echo 3 > /proc/sys/vm/drop_caches; for v in vda vdb; do echo -n "$v=$(dd if=/dev/$v bs=512 count=1 2>/dev/null | tr -d "\\000")/$(dd if=/dev/$v bs=512 skip=8 count=1 2>/dev/null | tr -d "\\000") "; done; echo';

test('a snapshot with diskOverlay freezes qcow2 and raw disks; the VM goes on in overlays', { timeout: budget(40 * 60 * 1000) }, async () => {
  qemuImg(['create', '-q', '-f', 'qcow2', join(d.images, 'a.qcow2'), '16M']);
  qemuImg(['create', '-q', '-f', 'raw', join(d.images, 'b.img'), '16M']);
  const orig = {
    name: 'orig', memory: 128, kernel: 'vmlinux', initrd: 'initrd',
    disks: [{ path: 'a.qcow2', format: 'qcow2' }, { path: 'b.img', format: 'raw' }],
  };
  assert.equal((await api(d, 'POST', '/v1/vms', orig)).status, 201);
  assert.equal((await api(d, 'POST', '/v1/vms/orig/start')).status, 200);
  const oc = await ConsoleClient.open(d.socketPath, 'orig');
  await oc.waitFor(/tsvisor guest ready[\s\S]*# /, 600_000); // input typed before the shell runs is lost
  await run(oc, 'for v in vda vdb; do echo BEFORE-$v | dd of=/dev/$v bs=512 conv=fsync 2>/dev/null; done; echo W$((1+1))W', 'W2W');

  const bad = await api(d, 'PUT', '/v1/vms/orig/snapshot', { dir: 'x', diskOverlay: 'yes' });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error, /^diskOverlay: must be a boolean/);

  // The client command takes the snapshot.
  const cli = spawn(process.execPath, [CLI, 'snapshot', 'orig', 'frozen', '--disk-overlay', '--socket', d.socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  cli.stdout.on('data', (b: Buffer) => (out += b.toString()));
  cli.stderr.on('data', (b: Buffer) => (err += b.toString()));
  assert.equal(await new Promise((resolve) => cli.on('close', resolve)), 0, err);
  const aOver = join(d.images, 'a.frozen.qcow2');
  const bOver = join(d.images, 'b.frozen.qcow2');
  assert.match(out, new RegExp(`disk 0 frozen; the VM now writes ${aOver}`));
  assert.match(out, new RegExp(`disk 1 frozen; the VM now writes ${bOver}`));
  const def = (await api(d, 'GET', '/v1/vms/orig')).json;
  assert.deepEqual(def.config.disks.map((x: { path: string; format: string }) => [x.path, x.format]), [[aOver, 'qcow2'], [bOver, 'qcow2']], 'the definition names the overlays');
  assert.match(qemuImg(['info', '-U', '--output=json', bOver]), /"backing-filename-format": "raw"/, "the raw image's overlay records its format");

  // After the snapshot: the first record overwritten, a second one added.
  await run(oc, 'for v in vda vdb; do echo CHANGED-$v | dd of=/dev/$v bs=512 conv=fsync 2>/dev/null; echo AFTER-$v | dd of=/dev/$v bs=512 seek=8 conv=fsync 2>/dev/null; done; echo W$((2+1))W', 'W3W');
  assert.match(await run(oc, `echo R$((1+1))R; ${READ_DISKS}`, 'vda='), /vda=CHANGED-vda\/AFTER-vda vdb=CHANGED-vdb\/AFTER-vdb/);

  // A clone of the snapshot while the original runs: the frozen images are shared now.
  const made = await api(d, 'POST', '/v1/snapshots/frozen/clones', { count: 1, prefix: 'r' });
  assert.equal(made.status, 201, made.text);
  const rc = await ConsoleClient.open(d.socketPath, 'r-1');
  assert.match(await run(rc, `echo R$((1+1))R; ${READ_DISKS}`, 'vda='), /vda=BEFORE-vda\/ vdb=BEFORE-vdb\/ /, 'the clone sees the disks as at the snapshot');
  rc.close();
  oc.close();
  for (const n of ['r-1', 'orig']) assert.equal((await api(d, 'POST', `/v1/vms/${n}/stop`)).status, 200);

  // The frozen images hold the records from before the snapshot, and nothing after.
  qemuImg(['convert', '-O', 'raw', join(d.images, 'a.qcow2'), join(d.dir, 'a.raw')]);
  for (const [file, v] of [[join(d.dir, 'a.raw'), 'vda'], [join(d.images, 'b.img'), 'vdb']] as const) {
    const bytes = readFileSync(file);
    assert.equal(bytes.subarray(0, 11).toString('latin1'), `BEFORE-${v}\n`, `${v}: the record from before`);
    assert.ok(bytes.subarray(8 * 512, 9 * 512).every((b) => b === 0), `${v}: nothing from after`);
  }
  for (const f of [join(d.images, 'a.qcow2'), aOver, bOver, join(d.dir, 'state', 'clones', 'r-1', 'disk0.qcow2')]) qemuImg(['check', '-q', f]);
});

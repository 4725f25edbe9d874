// A member of a shared switch that stops reading must not make the hosting
// process buffer frames without bound: the hub drops frames for it past
// MAX_SOCKET_BACKLOG, counts them, and keeps serving the members that read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_SOCKET_BACKLOG, SharedSwitchBackend, hubBacklog, switchSocketPath } from '../src/net/switch-hub.js';
import { encodeFrame, FrameReader } from '../src/net/frame-stream.js';
import { budget } from './lib/budget.js';

function broadcastFrame(seq: number): Uint8Array {
  const f = new Uint8Array(1400);
  f.fill(0xff, 0, 6); // broadcast: the switch floods it to every port
  f.set([0x52, 0x54, 0, 0, 0, 0x01], 6);
  f[12] = 0x08;
  f[13] = 0x00;
  new DataView(f.buffer).setUint32(14, seq);
  return f;
}

function connected(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

test('a member that stops reading gets frames dropped, not buffered without bound', { timeout: budget(120_000) }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-hub-'));
  process.env.TSVISOR_RUNTIME_DIR = dir;
  const name = `bp${process.pid}`;
  const host = new SharedSwitchBackend(name, 'host');
  host.start(() => {});
  try {
    // The first backend of a name hosts the hub; wait for its socket.
    const path = switchSocketPath(name);
    let stalled: Socket | null = null;
    for (let i = 0; i < 200 && !stalled; i++) {
      stalled = await connected(path).catch(() => null);
      if (!stalled) await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(stalled, 'the hub listens on its socket');
    stalled.pause(); // never reads: its queue on the hub side fills up
    const reader = await connected(path);
    let received = 0;
    const fr = new FrameReader(() => received++, 65535);
    reader.on('data', (b) => fr.push(b));

    // 64 MiB of broadcast frames from the host's own VM, far beyond the bound.
    const total = Math.ceil((64 * 1024 * 1024) / 1400);
    for (let i = 0; i < total; i++) {
      host.fromGuest(broadcastFrame(i));
      if (i % 256 === 0) await new Promise((r) => setImmediate(r)); // let the reading member drain
    }
    const b = hubBacklog(name);
    assert.ok(b.maxQueuedBytes <= MAX_SOCKET_BACKLOG, `backlog ${b.maxQueuedBytes} within ${MAX_SOCKET_BACKLOG}`);
    assert.ok(b.droppedFrames > 0, 'frames for the stalled member were dropped and counted');

    // The reading member keeps getting frames; a frame it sends still reaches the switch.
    const before = received;
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(received > 0, `the reading member received frames (${before} then ${received})`);
    reader.write(encodeFrame(broadcastFrame(1)));
    stalled.destroy();
    reader.destroy();
  } finally {
    await host.close();
    delete process.env.TSVISOR_RUNTIME_DIR;
    rmSync(dir, { recursive: true, force: true });
  }
});

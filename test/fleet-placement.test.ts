// The placement policy alone (fleet-placement.ts): which hosts qualify, in
// which order spread and pack rank them, and how the pick spreads concurrent
// placements over near-equal hosts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imagesOf, pickCandidate, rankHosts } from '../src/host/fleet-placement.js';
import type { AllocRecord, HostRecord, SchedRecord } from '../src/host/fleet-records.js';

const host = (name: string, budget: number, labels: Record<string, string> = {}, images = ['vmlinux']): HostRecord => ({
  name, url: `http://${name}:1`, cores: 2, memoryBudgetMiB: budget, reservedMiB: 0, freeMemoryMiB: 1000, images, labels, vms: 0, startedAt: '', leaseSeconds: 10,
});
const alloc = (entries: Record<string, Record<string, number>>) => new Map<string, AllocRecord | null>(Object.entries(entries).map(([h, vms]) => [h, { vms }]));
const none = new Map<string, SchedRecord | null>();

test('spread ranks by most free memory, pack by least that fits; full, drained, unlabeled and imageless hosts are out, with reasons', () => {
  const hosts = [host('a', 1000), host('b', 1000), host('c', 1000, { zone: 'x' }), host('d', 1000, {}, []), host('e', 1000)];
  const allocs = alloc({ a: { v1: 600 }, b: { v2: 100 }, c: { v3: 300 }, e: { v4: 950 } });
  const sched = new Map<string, SchedRecord | null>([['b', { unschedulable: true }]]);
  const spread = rankHosts(hosts, allocs, sched, { memory: 200, policy: 'spread', images: ['vmlinux'] });
  assert.deepEqual(spread.ranked.map((c) => [c.host.name, c.freeMiB]), [['c', 700], ['a', 400]]);
  const pack = rankHosts(hosts, allocs, sched, { memory: 200, policy: 'pack', images: ['vmlinux'] });
  assert.deepEqual(pack.ranked.map((c) => c.host.name), ['a', 'c']);
  const pinned = rankHosts(hosts, allocs, sched, { memory: 200, policy: 'spread', labels: { zone: 'x' } });
  assert.deepEqual(pinned.ranked.map((c) => c.host.name), ['c']);
  const nothing = rankHosts(hosts, allocs, sched, { memory: 800, policy: 'spread', images: ['vmlinux'], exclude: ['c'] });
  assert.equal(nothing.ranked.length, 0);
  assert.match(nothing.why, /a: 400 MiB free/);
  assert.match(nothing.why, /b: unschedulable/);
  assert.match(nothing.why, /d: no image vmlinux/);
  assert.match(nothing.why, /e: 50 MiB free/);
  assert.doesNotMatch(nothing.why, /\bc:/);
  assert.match(rankHosts([], new Map(), none, { memory: 1, policy: 'pack' }).why, /no host has joined/);
});

test('a hostile allocation value counts for nothing, not for negative room', () => {
  const allocs = new Map<string, AllocRecord | null>([['a', { vms: { x: -5000, y: Number.NaN as number, z: 'big' as unknown as number } }]]);
  const r = rankHosts([host('a', 100)], allocs, none, { memory: 100, policy: 'spread' });
  assert.deepEqual(r.ranked.map((c) => c.freeMiB), [100]);
});

test('pick: pack takes the tightest first; spread picks among near-equals; retries widen the choice', () => {
  const ranked = rankHosts([host('a', 1000), host('b', 980), host('c', 500)], new Map(), none, { memory: 100, policy: 'spread' }).ranked;
  const seen = new Set<string>();
  for (let i = 0; i < 10; i++) seen.add(pickCandidate(ranked, 'spread', 0, () => i / 10)!.host.name);
  assert.deepEqual([...seen].sort(), ['a', 'b'], 'c has much less room');
  const packed = rankHosts([host('a', 1000), host('b', 980), host('c', 500)], new Map(), none, { memory: 100, policy: 'pack' }).ranked;
  assert.equal(pickCandidate(packed, 'pack', 0, () => 0.99)!.host.name, 'c');
  assert.equal(pickCandidate(packed, 'pack', 1, () => 0.99)!.host.name, 'b');
  assert.equal(pickCandidate([], 'spread', 3), undefined);
});

test('imagesOf: the files a host must hold, relative ones only', () => {
  assert.deepEqual(imagesOf({ kernel: 'vmlinux', initrd: 'initrd', disks: [{ path: 'd.img' }, { path: '/abs/x.img' }] }), ['vmlinux', 'initrd', 'd.img']);
});

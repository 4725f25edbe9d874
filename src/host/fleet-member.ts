// This daemon as a member of a fleet (serve --fleet): its lease and
// heartbeats, its host record and its VMs' records in etcd, self-fencing when
// the lease cannot be kept, the restart of HA VMs of hosts whose lease
// expired, and draining this host by live migration. docs/fleet.md has the
// rules; the state itself is all in etcd (fleet-store.ts).

import { freemem } from 'node:os';
import type { Lease } from 'etcd3';
import type { Host } from './registry.js';
import type { OutgoingMigrations } from './migration-out.js';
import { FleetStore, type EtcdConnectOptions } from './fleet-store.js';
import { imagesOf, rankHosts, type PlacementPolicy } from './fleet-placement.js';
import { NAME_RE, allocatedMiB, type DrainRecord, type DrainVm, type FleetEvent, type HostRecord, type VmRecord } from './fleet-records.js';
import { ApiError } from './validate.js';
import type { CreateVmRequest } from './types.js';

export interface FleetOptions extends EtcdConnectOptions {
  hostName: string;
  /** This daemon's TCP API as the other members reach it. */
  advertise: string;
  /** Bearer token of the members' TCP APIs (one token for the fleet). */
  token: string;
  labels?: Record<string, string>;
  /** Lease time to live (s): a host silent this long is dead. Default 10. */
  leaseSeconds?: number;
}

/** Fence this long before the lease can expire at etcd: timers and the kill take time. */
const FENCE_MARGIN_MS = 1000;

export class FleetMember {
  readonly store: FleetStore;
  readonly name: string;
  readonly ttl: number;
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  /** When the last heartbeat etcd answered was sent: the lease lives at least until this + ttl. */
  private lastAckSentAt = 0;
  private fenced = false;
  /** Fires when the lease may be about to expire at etcd: fences even if a keep-alive call hangs. */
  private watchdog: NodeJS.Timeout | null = null;
  /** Keep-alives etcd answered. */
  heartbeats = 0;
  /** HA VMs this host stopped when it fenced itself: restarted here if nobody took them. */
  private readonly fencedVms = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private published = new Map<string, string>();
  private hostJson = '';
  /** Dead hosts, and when this member first saw them gone. */
  private readonly missingSince = new Map<string, number>();
  /** VMs placed here by a request still under way: not released by the reconcile. */
  private readonly pending = new Set<string>();
  /** Events that could not be written while etcd was unreachable. */
  private readonly queued: Omit<FleetEvent, 'seq' | 'time'>[] = [];
  private draining: Promise<void> | null = null;
  /** VMs this host is migrating away (their record already names the destination). */
  private readonly leaving = new Set<string>();
  private busy = { heartbeat: false, reconcile: false, watch: false };
  /** The fleet as last read, for /metrics (collected synchronously). */
  snapshot: { hosts: HostRecord[]; unschedulable: Set<string>; allocated: Map<string, number>; at: number } = { hosts: [], unschedulable: new Set(), allocated: new Map(), at: 0 };

  constructor(readonly opts: FleetOptions, private readonly host: Host, private readonly outgoing: OutgoingMigrations) {
    if (!NAME_RE.test(opts.hostName)) throw new Error(`--host-name '${opts.hostName}': letters, digits, _ . - (at most 63)`);
    this.name = opts.hostName;
    this.ttl = opts.leaseSeconds ?? 10;
    this.store = new FleetStore(opts);
  }

  get leaseHeld(): boolean {
    return this.leaseId !== null && !this.fenced;
  }

  private log(m: string): void {
    this.host.opts.log(`fleet: ${m}`);
  }

  /** Join: a lease, the host record, then the loops. Fails if etcd cannot be reached now. */
  async start(): Promise<void> {
    await this.join();
    const every = (ms: number, fn: () => Promise<void>, key: keyof FleetMember['busy']) => {
      const t = setInterval(() => {
        if (this.busy[key] || this.closed) return;
        this.busy[key] = true;
        fn().catch((e: unknown) => this.log(`${key}: ${msg(e)}`)).finally(() => (this.busy[key] = false));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.max(200, (this.ttl * 1000) / 4), () => this.heartbeat(), 'heartbeat');
    every(1000, () => this.reconcile(), 'reconcile');
    every(Math.max(250, (this.ttl * 1000) / 4), () => this.watchHosts(), 'watch');
    await this.reconcile();
    await this.event({ kind: 'joined', host: this.name, message: `${this.name} joined (${this.opts.advertise}, budget ${this.host.opts.memoryBudgetMiB} MiB, lease ${this.ttl} s)` });
  }

  private async join(): Promise<void> {
    this.lease?.release();
    const lease = this.store.client.lease(this.ttl, { autoKeepAlive: false });
    lease.on('lost', () => {}); // handled by the heartbeat loop
    const sentAt = Date.now();
    const id = await lease.grant();
    this.lease = lease;
    this.leaseId = id;
    this.lastAckSentAt = sentAt;
    this.armWatchdog();
    this.hostJson = '';
    await this.publishHost();
    if (this.fenced) {
      this.fenced = false;
      this.log('rejoined the fleet with a new lease');
    }
  }

  private hostRecord(): HostRecord {
    return {
      name: this.name,
      url: this.opts.advertise,
      cores: this.host.opts.cpus,
      memoryBudgetMiB: this.host.opts.memoryBudgetMiB,
      reservedMiB: this.host.reservedMiB(),
      freeMemoryMiB: Math.floor(freemem() / 1048576),
      images: this.host.images().map((i) => i.name).slice(0, 1000),
      labels: this.opts.labels ?? {},
      vms: this.host.vms.size,
      startedAt: new Date(this.host.startedAt).toISOString(),
      leaseSeconds: this.ttl,
    };
  }

  private async publishHost(): Promise<void> {
    if (!this.leaseId) return;
    const rec = this.hostRecord();
    const json = JSON.stringify({ ...rec, freeMemoryMiB: Math.round(rec.freeMemoryMiB / 64) }); // small free-memory moves do not cost a write
    if (json === this.hostJson) return;
    await this.store.putHost(rec, this.leaseId);
    this.hostJson = json;
  }

  /**
   * One heartbeat. Without an answer for the lease time (less a margin) the
   * host fences itself: its HA VMs stop, because from then on the others may
   * restart them.
   */
  private async heartbeat(): Promise<void> {
    const sentAt = Date.now();
    try {
      if (!this.lease || this.fenced) {
        await this.join();
        await this.flushEvents();
        return;
      }
      // Up to half the lease: a slow answer still counts (the fence decision uses the send time).
      // The client's keep-alive is a stream that may end without an answer: a timer of our own ends the wait.
      const waitMs = Math.max(1000, (this.ttl * 1000) / 2);
      const r = await within(this.lease.keepaliveOnce({ deadline: Date.now() + waitMs }), waitMs + 500, 'the keep-alive got no answer');
      if (Number(r.TTL) <= 0) throw new Error('lease expired at etcd');
      this.lastAckSentAt = sentAt;
      this.armWatchdog();
      this.heartbeats++;
      await this.publishHost();
      await this.flushEvents();
    } catch (e) {
      const silentMs = Date.now() - this.lastAckSentAt;
      if (!this.fenced && (silentMs >= this.ttl * 1000 - FENCE_MARGIN_MS || /expired|not found|revoked/i.test(msg(e)))) await this.fence(msg(e));
    }
  }

  /**
   * The fence deadline as a timer of its own, re-armed by every answered
   * keep-alive: the heartbeat loop only decides when a call returns, and a
   * call stuck on a dead connection must not hold the fence back.
   */
  private armWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    const ackAt = this.lastAckSentAt;
    this.watchdog = setTimeout(() => {
      this.watchdog = null;
      if (this.fenced || this.closed || this.lastAckSentAt !== ackAt) return;
      this.fence(`no keep-alive answered for ${Math.round((Date.now() - ackAt) / 1000)} s`).catch((e: unknown) => this.log(`fencing: ${msg(e)}`));
    }, Math.max(0, ackAt + this.ttl * 1000 - FENCE_MARGIN_MS - Date.now()));
    this.watchdog.unref();
  }

  /** Stop every HA VM of this host at once (a hard stop: the host is cut off and someone will restart them). */
  private async fence(why: string): Promise<void> {
    if (this.fenced) return;
    this.fenced = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    this.leaseId = null;
    const ha = [...this.host.vms.values()].filter((vm) => vm.config.ha === true && (vm.state === 'running' || vm.state === 'paused'));
    this.log(`lost the lease (${why}): fencing, stopping ${ha.length} HA VM(s)`);
    await Promise.all(
      ha.map(async (vm) => {
        this.fencedVms.add(vm.name);
        try {
          await this.host.stop(vm.name, true);
        } catch (e) {
          this.log(`${vm.name}: fencing stop failed: ${msg(e)}`);
        }
        this.host.events.add(vm.name, 'fenced', 'stopped: this host lost its fleet lease', 'warning');
      }),
    );
    for (const vm of ha) this.queued.push({ kind: 'fenced', host: this.name, vm: vm.name, message: `${vm.name} stopped on ${this.name}: the host lost its lease (${why})` });
  }

  async event(e: Omit<FleetEvent, 'seq' | 'time'>): Promise<void> {
    try {
      await this.store.addEvent(e);
    } catch {
      if (this.queued.length < 100) this.queued.push(e);
    }
  }

  private async flushEvents(): Promise<void> {
    while (this.queued.length > 0) {
      await this.store.addEvent(this.queued[0]!);
      this.queued.shift();
    }
  }

  private recordOf(name: string): Omit<VmRecord, 'host' | 'updatedAt'> | null {
    const vm = this.host.vms.get(name);
    if (!vm) return null;
    return { name, memory: vm.config.memory, ha: vm.config.ha === true, state: vm.state, definition: vm.config };
  }

  /**
   * Make etcd agree with this host: each local VM is claimed (name, memory) and
   * its state published; allocations of VMs that are no longer here are
   * released; a local copy of a VM that runs elsewhere now is dropped.
   */
  async reconcile(): Promise<void> {
    if (!this.leaseHeld) return;
    const alloc = (await this.store.alloc(this.name)).value?.vms ?? {};
    for (const vm of [...this.host.vms.values()]) {
      const rec = this.recordOf(vm.name);
      if (!rec) continue;
      const sig = JSON.stringify([rec.state, rec.memory, rec.ha]);
      if (alloc[vm.name] === undefined) {
        try {
          await this.store.claim(this.name, Number.MAX_SAFE_INTEGER, rec);
          this.published.set(vm.name, sig);
        } catch (e) {
          await this.foreignCopy(vm.name, msg(e));
        }
        continue;
      }
      if (this.published.get(vm.name) === sig) continue;
      if ((await this.store.publishVm(this.name, rec)) === 'elsewhere') await this.foreignCopy(vm.name, 'its fleet record names another host');
      else this.published.set(vm.name, sig);
    }
    for (const name of Object.keys(alloc)) {
      if (this.host.vms.has(name) || this.host.incoming.has(name) || this.pending.has(name)) continue;
      const cur = await this.store.vm(name);
      // Placed here by a request that has not created it yet, or arriving by a migration: leave it a minute.
      // (A migration may take long: an arrival is given 15 minutes.)
      const age = cur.value ? Date.now() - Date.parse(cur.value.updatedAt) : Infinity;
      if (cur.value?.host === this.name && ((cur.value.state === 'moving' && age < 900_000) || ((cur.value.state === 'placed' || cur.value.state === 'restarting') && age < 60_000))) continue;
      await this.store.release(this.name, name, true);
      this.published.delete(name);
    }
    for (const name of this.published.keys()) if (!this.host.vms.has(name)) this.published.delete(name);
    await this.publishHost();
    await this.refreshSnapshot();
  }

  /** Whether `owner` is migrating `name` away (or has just finished): its copy is the one leaving. */
  private async handingOver(owner: HostRecord, name: string): Promise<boolean> {
    const r = await this.call(owner, 'GET', `/v1/vms/${encodeURIComponent(name)}/migrate`, undefined, [404]).catch(() => null);
    const phase = r?.status === 200 ? (r.body as { phase?: unknown } | null)?.phase : undefined;
    return typeof phase === 'string' && phase !== 'failed' && phase !== 'cancelled';
  }

  /** A local VM whose name the fleet gives to another host. */
  private async foreignCopy(name: string, why: string): Promise<void> {
    const vm = this.host.vms.get(name);
    if (!vm) return;
    const cur = (await this.store.vm(name)).value;
    if (this.leaving.has(name)) return; // leaving by a drain this host runs
    if (vm.state === 'running' || vm.state === 'paused') {
      // Moved here by a plain migration: the host the record names no longer has it, so the record follows.
      const owner = cur ? (await this.store.hosts()).find((h) => h.name === cur.host) : undefined;
      if (owner && cur) {
        const there = await this.call(owner, 'GET', `/v1/vms/${encodeURIComponent(name)}`, undefined, [404]).catch(() => null);
        const rec = this.recordOf(name);
        if (there?.status === 404 && rec) {
          await this.store.claim(this.name, Number.MAX_SAFE_INTEGER, rec, true);
          await this.store.release(owner.name, name, false);
          this.published.set(name, JSON.stringify([rec.state, rec.memory, rec.ha]));
          return;
        }
        // Still there while its migration to here runs or is being wound up: a handover, not a conflict; the next round looks again.
        if (there?.status === 200 && (await this.handingOver(owner, name))) return;
      }
      if (!this.published.has(`conflict:${name}`)) {
        this.published.set(`conflict:${name}`, '1');
        this.log(`${name}: runs here but ${why}`);
        await this.event({ kind: 'conflict', host: this.name, vm: name, message: `${name} runs on ${this.name} but ${why}` });
      }
      return;
    }
    // Stopped here (fenced, or left over) and owned elsewhere now: forget this copy.
    this.fencedVms.delete(name);
    try {
      await this.host.remove(name, true);
      this.log(`${name}: removed the stopped local copy: ${why}`);
    } catch (e) {
      this.log(`${name}: could not remove the local copy: ${msg(e)}`);
    }
  }

  private async refreshSnapshot(): Promise<void> {
    const [hosts, scheds, allocs] = await Promise.all([this.store.hosts(), this.store.scheds(), this.store.allocs()]);
    this.snapshot = {
      hosts,
      unschedulable: new Set([...scheds].filter(([, s]) => s?.unschedulable).map(([n]) => n)),
      allocated: new Map([...allocs].map(([n, a]) => [n, allocatedMiB(a.value)])),
      at: Date.now(),
    };
    // HA VMs stopped by a fence that nobody took: they still belong here, so they run again.
    for (const name of [...this.fencedVms]) {
      const cur = (await this.store.vm(name)).value;
      const vm = this.host.vms.get(name);
      if (!vm || !cur || cur.host !== this.name) continue;
      this.fencedVms.delete(name);
      const rec = this.recordOf(name);
      // Touch the record first: a member about to move it (compare on its revision) then loses, and if it won already, the record names it.
      if (!rec || (await this.store.publishVm(this.name, { ...rec, state: 'restarting' })) === 'elsewhere') continue;
      if (vm.state === 'stopped' || vm.state === 'failed') {
        this.log(`${name}: fenced earlier and still placed here: starting it again`);
        await this.host.start(name).catch((e: unknown) => this.log(`${name}: restart after fencing failed: ${msg(e)}`));
      }
    }
  }

  /**
   * Hosts whose lease expired: after a further lease time (the dead host has
   * fenced itself by then), their HA VMs are moved, one transaction each, to
   * other hosts and started there. Every member tries; the transaction lets
   * exactly one win per VM.
   */
  private async watchHosts(): Promise<void> {
    if (!this.leaseHeld) return;
    const [alive, allocs] = await Promise.all([this.store.hostNames(), this.store.allocs()]);
    for (const h of [...this.missingSince.keys()]) if (alive.has(h)) this.missingSince.delete(h);
    for (const [h, a] of allocs) {
      if (alive.has(h) || h === this.name || Object.keys(a.value?.vms ?? {}).length === 0) continue;
      const since = this.missingSince.get(h);
      if (since === undefined) {
        this.missingSince.set(h, Date.now());
        this.log(`host ${h} has no lease: its HA VMs restart elsewhere in ${this.ttl} s unless it comes back`);
        continue;
      }
      if (Date.now() - since < this.ttl * 1000) continue;
      for (const name of Object.keys(a.value?.vms ?? {})) {
        const cur = await this.store.vm(name);
        if (!cur.value || cur.value.host !== h || !cur.value.ha) continue;
        await this.restartElsewhere(cur.value, h, cur.mod);
      }
    }
  }

  private async restartElsewhere(rec: VmRecord, dead: string, mod: string): Promise<void> {
    let moved;
    try {
      moved = await this.store.move(rec.name, { memory: rec.memory, policy: 'spread', exclude: [dead], images: [] }, 'restarting', dead, mod);
    } catch (e) {
      this.log(`${rec.name}: cannot restart it elsewhere: ${msg(e)}`);
      return;
    }
    if (!moved) return; // another member took it
    await this.event({ kind: 'expired', host: dead, vm: rec.name, message: `${dead}'s lease expired ${this.ttl}+ s ago: restarting ${rec.name} on ${moved.host.name}` });
    try {
      await this.createOn(moved.host, rec.definition, true);
      await this.event({ kind: 'restarted', host: moved.host.name, vm: rec.name, message: `${rec.name} restarted on ${moved.host.name} (was on ${dead})` });
    } catch (e) {
      this.log(`${rec.name}: restart on ${moved.host.name} failed: ${msg(e)}`);
      await this.event({ kind: 'restarted', host: moved.host.name, vm: rec.name, message: `${rec.name}: restart on ${moved.host.name} failed: ${msg(e)}` });
    }
  }

  /** Create (and start) a VM on a member: this daemon directly, another through its API. */
  private async createOn(target: HostRecord, def: CreateVmRequest, start: boolean): Promise<Record<string, unknown>> {
    if (target.name === this.name) {
      this.pending.add(def.name);
      try {
        const vm = this.host.vms.get(def.name) ?? (await this.host.create(def));
        if (start && vm.state !== 'running') await this.host.start(def.name);
        return this.host.describe(vm);
      } finally {
        this.pending.delete(def.name);
      }
    }
    const made = await this.call(target, 'POST', '/v1/vms', def, [409]);
    if (made.status === 409 && !/already exists/.test(String(made.body.error))) throw new ApiError(409, `${target.name}: ${String(made.body.error)}`);
    if (start) {
      const s = await this.call(target, 'POST', `/v1/vms/${encodeURIComponent(def.name)}/start`, undefined, [409]);
      return s.body;
    }
    return made.body;
  }

  /** A request to another member's API with the fleet token; its refusal becomes an ApiError with its message. */
  async call(target: HostRecord, method: string, path: string, body?: unknown, tolerate: number[] = []): Promise<{ status: number; body: Record<string, unknown> }> {
    let res: Response;
    try {
      res = await fetch(new URL(path, target.url), {
        method,
        headers: { authorization: `Bearer ${this.opts.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(120_000),
      });
    } catch (e) {
      throw new ApiError(502, `${target.name} (${target.url}): ${msg(e)}`);
    }
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON
    }
    if (res.status >= 400 && !tolerate.includes(res.status)) throw new ApiError(res.status === 401 ? 502 : res.status, `${target.name}: ${String(json.error ?? text.slice(0, 200))}`);
    return { status: res.status, body: json };
  }

  /** POST /v1/fleet/vms: place by policy (one transaction), then create (and start) on the chosen host. */
  async createPlaced(body: unknown): Promise<{ host: string; vm: Record<string, unknown> }> {
    if (!this.leaseHeld) throw new ApiError(503, 'this daemon has no fleet lease right now (etcd unreachable?)');
    const { vm: def, policy, labels, start } = parsePlacedCreate(body);
    const host = await this.store.place({ name: def.name, memory: def.memory, ha: def.ha === true, definition: def }, { memory: def.memory, policy, labels, images: imagesOf(def) });
    try {
      const vm = await this.createOn(host, def, start);
      await this.event({ kind: 'placed', host: host.name, vm: def.name, message: `${def.name} (${def.memory} MiB) placed on ${host.name} by ${policy}` });
      return { host: host.name, vm };
    } catch (e) {
      await this.store.release(host.name, def.name, true).catch(() => {});
      throw e;
    }
  }

  /** A create through this daemon's own API: the fleet must give it the name and the room first. */
  async claimLocal(config: CreateVmRequest): Promise<void> {
    if (!this.leaseHeld) throw new ApiError(503, 'this daemon has no fleet lease right now (etcd unreachable?): a VM can only be created when the fleet can record it');
    this.pending.add(config.name);
    try {
      await this.store.claim(this.name, this.host.opts.memoryBudgetMiB, { name: config.name, memory: config.memory, ha: config.ha === true, state: 'created', definition: config });
    } finally {
      this.pending.delete(config.name);
    }
  }

  async releaseLocal(name: string): Promise<void> {
    if (!this.leaseHeld) return; // the reconcile does it once the lease is back
    await this.store.release(this.name, name, true).catch((e: unknown) => this.log(`${name}: release failed: ${msg(e)}`));
    this.published.delete(name);
  }

  /** Drain `hostName`: here if it is this host, else by asking that host's daemon. */
  async drain(hostName: string, policy: PlacementPolicy): Promise<DrainRecord> {
    if (hostName !== this.name) {
      const target = (await this.store.hosts()).find((h) => h.name === hostName);
      if (!target) throw new ApiError(404, `no live host named '${hostName}' in the fleet`);
      return (await this.call(target, 'POST', `/v1/fleet/hosts/${encodeURIComponent(hostName)}/drain`, { policy })).body as unknown as DrainRecord;
    }
    if (this.draining) throw new ApiError(409, `${hostName} is already draining`);
    await this.store.setSched(this.name, { unschedulable: true, reason: 'drained' });
    const names = [...this.host.vms.keys()].sort();
    const rec: DrainRecord = { host: this.name, state: 'running', startedAt: new Date().toISOString(), vms: names.map((n) => ({ name: n, to: null, phase: 'pending' })) };
    await this.store.putDrain(rec);
    await this.event({ kind: 'drain', host: this.name, message: `draining ${this.name}: ${names.length} VM(s)` });
    this.draining = this.runDrain(rec, policy).finally(() => (this.draining = null));
    return rec;
  }

  private async runDrain(rec: DrainRecord, policy: PlacementPolicy): Promise<void> {
    for (const item of rec.vms) {
      try {
        await this.moveOne(item, policy, rec);
      } catch (e) {
        item.phase = 'failed';
        item.error = msg(e);
      }
      await this.store.putDrain(rec).catch(() => {});
      if (item.phase === 'failed') await this.event({ kind: 'drain', host: this.name, vm: item.name, message: `${item.name} could not leave ${this.name}: ${item.error ?? ''}` });
    }
    rec.state = rec.vms.every((v) => v.phase === 'moved' || v.phase === 'skipped') ? 'done' : 'incomplete';
    rec.finishedAt = new Date().toISOString();
    await this.store.putDrain(rec).catch(() => {});
    await this.event({ kind: 'drain', host: this.name, message: `drain of ${this.name} ${rec.state}: ${rec.vms.filter((v) => v.phase === 'moved').length} moved, ${rec.vms.filter((v) => v.phase === 'failed').length} could not move` });
  }

  private async moveOne(item: DrainVm, policy: PlacementPolicy, rec: DrainRecord): Promise<void> {
    const vm = this.host.vms.get(item.name);
    if (!vm) {
      item.phase = 'skipped';
      return;
    }
    const cur = await this.store.vm(item.name);
    const moved = await this.store.move(item.name, { memory: vm.config.memory, policy, exclude: [this.name], images: [] }, 'moving', undefined, cur.mod);
    if (!moved) throw new Error('its fleet record changed under the drain');
    this.leaving.add(item.name);
    item.to = moved.host.name;
    item.phase = 'migrating';
    await this.store.putDrain(rec).catch(() => {});
    try {
      if (vm.state === 'running') {
        await this.outgoing.start(item.name, { to: moved.host.url.replace(/\/$/, ''), token: this.opts.token });
        const p = await this.outgoing.finished(item.name);
        if (p.phase !== 'completed') throw new Error(`migration ${p.phase}: ${p.error ?? ''}`);
      } else {
        // Not running: its definition moves, nothing else to carry.
        await this.createOn(moved.host, vm.config, false);
        await this.host.remove(item.name, true);
      }
      item.phase = 'moved';
      await this.event({ kind: 'migrated', host: moved.host.name, vm: item.name, message: `${item.name} moved from ${this.name} to ${moved.host.name} (drain)` });
    } catch (e) {
      // It stays here: the record comes back and the room taken at the destination is given back.
      await this.store.release(moved.host.name, item.name, false).catch(() => {});
      await this.store.claim(this.name, Number.MAX_SAFE_INTEGER, { ...moved.record, state: vm.state }, true).catch(() => {});
      throw e;
    } finally {
      this.leaving.delete(item.name);
    }
  }

  /**
   * Live-migrate a VM of the fleet to `to` (or to a host chosen by policy):
   * asked of the daemon that runs it, with the fleet token for the destination.
   */
  async migrateVm(name: string, to: string | undefined, policy: PlacementPolicy): Promise<{ from: string; to: string; progress: unknown }> {
    const cur = (await this.store.vm(name)).value;
    if (!cur) throw new ApiError(404, `no VM named '${name}' in the fleet`);
    const [hosts, scheds, allocs] = await Promise.all([this.store.hosts(), this.store.scheds(), this.store.allocs()]);
    const owner = hosts.find((h) => h.name === cur.host);
    if (!owner) throw new ApiError(409, `${name}'s host ${cur.host} is not alive`);
    let target: HostRecord | undefined;
    if (to !== undefined) {
      target = hosts.find((h) => h.name === to);
      if (!target) throw new ApiError(404, `no live host named '${to}' in the fleet`);
      if (target.name === owner.name) throw new ApiError(409, `${name} already runs on ${to}`);
    } else {
      const { ranked, why } = rankHosts(hosts, new Map([...allocs].map(([k, v]) => [k, v.value])), scheds, { memory: cur.memory, policy, exclude: [owner.name] });
      target = ranked[0]?.host;
      if (!target) throw new ApiError(409, `placement: ${why}`);
    }
    const body = { to: target.url.replace(/\/$/, ''), token: this.opts.token };
    const progress = owner.name === this.name ? await this.outgoing.start(name, body) : (await this.call(owner, 'POST', `/v1/vms/${encodeURIComponent(name)}/migrate`, body)).body;
    await this.event({ kind: 'migrated', host: target.name, vm: name, message: `${name}: live migration from ${owner.name} to ${target.name} started` });
    return { from: owner.name, to: target.name, progress };
  }

  async undrain(hostName: string): Promise<void> {
    await this.store.setSched(hostName, null);
    await this.event({ kind: 'undrain', host: hostName, message: `${hostName} is schedulable again` });
  }

  /** GET /v1/fleet/hosts: live hosts with their allocation and schedulability, and dead ones that still hold VMs. */
  async hostsView(): Promise<Record<string, unknown>[]> {
    const [hosts, scheds, allocs] = await Promise.all([this.store.hosts(), this.store.scheds(), this.store.allocs()]);
    const out: Record<string, unknown>[] = hosts.map((h) => ({
      ...h,
      alive: true,
      unschedulable: scheds.get(h.name)?.unschedulable === true,
      allocatedMiB: allocatedMiB(allocs.get(h.name)?.value ?? null),
      allocatedVms: Object.keys(allocs.get(h.name)?.value?.vms ?? {}).length,
    }));
    for (const [n, a] of allocs) {
      if (hosts.some((h) => h.name === n) || Object.keys(a.value?.vms ?? {}).length === 0) continue;
      out.push({ name: n, alive: false, unschedulable: scheds.get(n)?.unschedulable === true, allocatedMiB: allocatedMiB(a.value), allocatedVms: Object.keys(a.value?.vms ?? {}).length });
    }
    return out;
  }

  stopLoops(): void {
    this.closed = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** Leave: publish the VMs' last states and revoke the lease (the host record goes at once; its VMs' records stay). */
  async close(): Promise<void> {
    this.stopLoops();
    await this.draining?.catch(() => {});
    try {
      if (this.leaseHeld) {
        this.published.clear();
        await this.reconcile().catch(() => {});
        await this.event({ kind: 'left', host: this.name, message: `${this.name} left the fleet` });
        await this.lease?.revoke({ deadline: Date.now() + 3000 });
      }
    } catch (e) {
      this.log(`leaving: ${msg(e)}`);
    }
    this.store.close();
  }
}

/** `p`, or a rejection with `why` after `ms`. */
function within<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(why)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The body of POST /v1/fleet/vms: {vm: CREATE_REQUEST, policy?, labels?, start?}. */
function parsePlacedCreate(body: unknown): { vm: CreateVmRequest; policy: PlacementPolicy; labels?: Record<string, string>; start: boolean } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'body: expected {vm, policy?, labels?, start?}');
  const b = body as Record<string, unknown>;
  const extra = Object.keys(b).find((k) => !['vm', 'policy', 'labels', 'start'].includes(k));
  if (extra !== undefined) throw new ApiError(400, `${extra}: unknown field`);
  const vm = b.vm as CreateVmRequest;
  if (typeof vm !== 'object' || vm === null || Array.isArray(vm)) throw new ApiError(400, 'vm: the VM to create (the body of POST /v1/vms)');
  if (typeof vm.name !== 'string' || !NAME_RE.test(vm.name)) throw new ApiError(400, 'vm.name: letters, digits, _ . - (at most 63)');
  if (typeof vm.memory !== 'number' || !Number.isInteger(vm.memory) || vm.memory < 1) throw new ApiError(400, 'vm.memory: MiB, a whole number');
  if (typeof vm.kernel !== 'string') throw new ApiError(400, 'vm.kernel: required');
  const policy = b.policy ?? 'spread';
  if (policy !== 'spread' && policy !== 'pack') throw new ApiError(400, 'policy: spread or pack');
  let labels: Record<string, string> | undefined;
  if (b.labels !== undefined) {
    if (typeof b.labels !== 'object' || b.labels === null || Array.isArray(b.labels) || Object.values(b.labels).some((v) => typeof v !== 'string')) {
      throw new ApiError(400, 'labels: an object of string values, e.g. {"zone": "a"}');
    }
    labels = b.labels as Record<string, string>;
  }
  if (b.start !== undefined && typeof b.start !== 'boolean') throw new ApiError(400, 'start: a boolean');
  return { vm, policy, labels, start: b.start === true };
}

// The fleet's state in etcd, through the etcd3 client: reads, and every change
// that must be atomic as one transaction comparing the revisions it read
// (placement, moves, claims, the event ring). A transaction that lost a race
// is read again and retried; nothing here keeps state of its own.

import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions, type Namespace } from 'etcd3';
import { noop } from 'cockatiel';
import {
  FLEET_EVENTS, NAME_RE, keys, parseRecord, type AllocRecord, type DrainRecord, type FleetEvent, type HostRecord, type SchedRecord, type VmRecord,
} from './fleet-records.js';
import { pickCandidate, rankHosts, type PlacementRequest } from './fleet-placement.js';
import { ApiError } from './validate.js';

export interface EtcdConnectOptions {
  endpoints: string[];
  prefix?: string;
  username?: string;
  password?: string;
  /** PEM files for TLS: the CA that signed etcd's certificate, and a client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Deadline of each call (ms); a call that would wait longer for an unreachable etcd fails. */
  callTimeoutMs?: number;
}

interface Versioned<T> {
  value: T | null;
  /** "0" when the key does not exist. */
  mod: string;
}

/** Retries of a transaction that lost a race before the request fails (each one read again). */
const TXN_RETRIES = 64;

export class FleetStore {
  readonly client: Etcd3;
  readonly kv: Namespace;
  readonly k = keys('');
  /** etcd operations issued (reads, transactions, puts), for the benchmark and /metrics. */
  ops = 0;

  constructor(opts: EtcdConnectOptions) {
    const tls = opts.caFile !== undefined || opts.certFile !== undefined;
    const io: IOptions = {
      hosts: opts.endpoints,
      // Each call has a deadline (streams excepted): an unreachable etcd must fail calls, not hang them.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + (opts.callTimeoutMs ?? 5000) }),
      // Connecting to a dead endpoint gives up quickly: the loops retry.
      dialTimeout: Math.min(opts.callTimeoutMs ?? 5000, 3000),
      // No circuit breaker: the client's default opens for 5 s after three failed calls, so a few
      // slow reads under load would block the heartbeats longer than a short lease and fence the
      // host. Every call has its deadline and the loops retry on their own schedule.
      faultHandling: { host: () => noop, global: noop },
    };
    if (tls) {
      io.credentials = {
        rootCertificate: readFileSync(opts.caFile!),
        ...(opts.certFile !== undefined ? { certChain: readFileSync(opts.certFile) } : {}),
        ...(opts.keyFile !== undefined ? { privateKey: readFileSync(opts.keyFile) } : {}),
      };
    }
    if (opts.username !== undefined) io.auth = { username: opts.username, password: opts.password ?? '' };
    this.client = new Etcd3(io);
    this.kv = this.client.namespace(opts.prefix ?? 'tsvisor/');
  }

  close(): void {
    this.client.close();
  }

  private async getOne<T>(key: string): Promise<Versioned<T>> {
    this.ops++;
    const r = await this.kv.get(key).exec();
    const kv = r.kvs[0];
    return kv ? { value: parseRecord<T>(kv.value), mod: kv.mod_revision } : { value: null, mod: '0' };
  }

  private async getPrefix<T>(prefix: string): Promise<Map<string, Versioned<T>>> {
    this.ops++;
    const r = await this.kv.getAll().prefix(prefix).exec();
    const out = new Map<string, Versioned<T>>();
    for (const kv of r.kvs) out.set(kv.key.toString('utf8').slice(prefix.length), { value: parseRecord<T>(kv.value), mod: kv.mod_revision });
    return out;
  }

  /** Live hosts whose records are well formed (a malformed one is never placed on). */
  async hosts(): Promise<HostRecord[]> {
    const m = await this.getPrefix<HostRecord>(this.k.hosts);
    return [...m].filter(([k, v]) => v.value !== null && wellFormedHost(k, v.value)).map(([, v]) => v.value!).sort((a, b) => a.name.localeCompare(b.name));
  }

  async hostNames(): Promise<Set<string>> {
    this.ops++;
    const ks = await this.kv.getAll().prefix(this.k.hosts).keys();
    return new Set(ks.map((k) => k.slice(this.k.hosts.length)));
  }

  async scheds(): Promise<Map<string, SchedRecord | null>> {
    const m = await this.getPrefix<SchedRecord>(this.k.scheds);
    return new Map([...m].map(([k, v]) => [k, v.value]));
  }

  async allocs(): Promise<Map<string, Versioned<AllocRecord>>> {
    return this.getPrefix<AllocRecord>(this.k.allocs);
  }

  async vms(): Promise<VmRecord[]> {
    const m = await this.getPrefix<VmRecord>(this.k.vms);
    return [...m.values()].map((v) => v.value).filter((v): v is VmRecord => v !== null).sort((a, b) => a.name.localeCompare(b.name));
  }

  vm(name: string): Promise<Versioned<VmRecord>> {
    return this.getOne<VmRecord>(this.k.vm(name));
  }

  alloc(host: string): Promise<Versioned<AllocRecord>> {
    return this.getOne<AllocRecord>(this.k.alloc(host));
  }

  async putHost(rec: HostRecord, leaseId: string): Promise<void> {
    this.ops++;
    await this.kv.put(this.k.host(rec.name)).value(JSON.stringify(rec)).lease(leaseId).exec();
  }

  async setSched(host: string, rec: SchedRecord | null): Promise<void> {
    this.ops++;
    if (rec === null) await this.kv.delete().key(this.k.sched(host)).exec();
    else await this.kv.put(this.k.sched(host)).value(JSON.stringify(rec)).exec();
  }

  async putDrain(rec: DrainRecord): Promise<void> {
    this.ops++;
    await this.kv.put(this.k.drain(rec.host)).value(JSON.stringify(rec)).exec();
  }

  async drain(host: string): Promise<DrainRecord | null> {
    return (await this.getOne<DrainRecord>(this.k.drain(host))).value;
  }

  /** Commit a transaction; false when a comparison failed (someone changed what was read). */
  private async txn(cmps: [string, 'Mod' | 'Create', string][], puts: [string, unknown][], dels: string[] = []): Promise<boolean> {
    this.ops++;
    let b = this.kv.if(cmps[0]![0], cmps[0]![1], '==', cmps[0]![2]);
    for (const c of cmps.slice(1)) b = b.and(c[0], c[1], '==', c[2]);
    const ops = [...puts.map(([k, v]) => this.kv.put(k).value(JSON.stringify(v))), ...dels.map((k) => this.kv.delete().key(k))];
    const r = await b.then(...ops).commit();
    return r.succeeded;
  }

  /**
   * Place a new VM: choose a host by policy and, in one transaction, take the
   * name (the VM key must not exist) and the memory (the host's allocation must
   * be unchanged since it was read). Returns the chosen host.
   */
  async place(rec: Omit<VmRecord, 'host' | 'updatedAt' | 'state'>, req: PlacementRequest): Promise<HostRecord> {
    for (let i = 0; i < TXN_RETRIES; i++) {
      const [hosts, allocs, scheds, existing] = await Promise.all([this.hosts(), this.allocs(), this.scheds(), this.vm(rec.name)]);
      if (existing.mod !== '0') throw new ApiError(409, `name: a VM named '${rec.name}' already exists in the fleet (on ${existing.value?.host ?? 'an unknown host'})`);
      const { ranked, why } = rankHosts(hosts, new Map([...allocs].map(([k, v]) => [k, v.value])), scheds, req);
      const c = pickCandidate(ranked, req.policy, i);
      if (!c) throw new ApiError(409, `placement: ${why}`);
      const a = allocs.get(c.host.name) ?? { value: null, mod: '0' };
      const next: AllocRecord = { vms: { ...(a.value?.vms ?? {}), [rec.name]: rec.memory } };
      const vm: VmRecord = { ...rec, host: c.host.name, state: 'placed', updatedAt: new Date().toISOString() };
      const ok = await this.txn(
        [[this.k.vm(rec.name), 'Create', '0'], [this.k.alloc(c.host.name), 'Mod', a.mod]],
        [[this.k.vm(rec.name), vm], [this.k.alloc(c.host.name), next]],
      );
      if (ok) return c.host;
      await jitter(i);
    }
    throw new ApiError(503, `placement: gave up after ${TXN_RETRIES} conflicting transactions; try again`);
  }

  /**
   * Move a VM's record to another host chosen by policy (drain, HA restart):
   * the record must be unchanged since read (so one mover wins), the
   * destination's allocation too. With `releaseFrom`, the old host's entry is
   * dropped in the same transaction (its host is dead).
   */
  async move(name: string, req: PlacementRequest, state: VmRecord['state'], releaseFrom?: string, expectMod?: string): Promise<{ host: HostRecord; record: VmRecord } | null> {
    for (let i = 0; i < TXN_RETRIES; i++) {
      const [hosts, allocs, scheds, cur] = await Promise.all([this.hosts(), this.allocs(), this.scheds(), this.vm(name)]);
      if (!cur.value) return null;
      if (expectMod !== undefined && cur.mod !== expectMod) return null; // someone else moved it
      const { ranked, why } = rankHosts(hosts, new Map([...allocs].map(([k, v]) => [k, v.value])), scheds, { ...req, memory: cur.value.memory });
      const c = pickCandidate(ranked, req.policy, i);
      if (!c) throw new ApiError(409, `placement: ${why}`);
      const a = allocs.get(c.host.name) ?? { value: null, mod: '0' };
      const record: VmRecord = { ...cur.value, host: c.host.name, state, updatedAt: new Date().toISOString() };
      const cmps: [string, 'Mod' | 'Create', string][] = [[this.k.vm(name), 'Mod', cur.mod], [this.k.alloc(c.host.name), 'Mod', a.mod]];
      const puts: [string, unknown][] = [[this.k.vm(name), record], [this.k.alloc(c.host.name), { vms: { ...(a.value?.vms ?? {}), [name]: cur.value.memory } }]];
      if (releaseFrom !== undefined && releaseFrom !== c.host.name) {
        const old = allocs.get(releaseFrom);
        if (old?.value) {
          const vms = { ...old.value.vms };
          delete vms[name];
          cmps.push([this.k.alloc(releaseFrom), 'Mod', old.mod]);
          puts.push([this.k.alloc(releaseFrom), { vms }]);
        }
      }
      if (await this.txn(cmps, puts)) return { host: c.host, record };
      if (expectMod !== undefined) {
        const again = await this.vm(name);
        if (again.mod !== cur.mod) return null;
      }
      await jitter(i);
    }
    throw new ApiError(503, `move: gave up after ${TXN_RETRIES} conflicting transactions`);
  }

  /**
   * A VM is (to be) created on `host` itself: take its name and memory unless
   * the name belongs to another host. A record already placed here is kept.
   */
  async claim(host: string, budgetMiB: number, rec: Omit<VmRecord, 'host' | 'updatedAt'>, takeOver = false): Promise<void> {
    for (let i = 0; i < TXN_RETRIES; i++) {
      const [cur, a] = await Promise.all([this.vm(rec.name), this.alloc(host)]);
      if (cur.value && cur.value.host !== host && !takeOver) throw new ApiError(409, `name: a VM named '${rec.name}' already exists in the fleet (on ${cur.value.host})`);
      const vms = { ...(a.value?.vms ?? {}) };
      const others = Object.entries(vms).filter(([n]) => n !== rec.name).reduce((s, [, m]) => s + m, 0);
      if (others + rec.memory > budgetMiB) throw new ApiError(409, `memory: ${rec.memory} MiB requested but the fleet has only ${budgetMiB - others} MiB of this host's budget left`);
      vms[rec.name] = rec.memory;
      const record: VmRecord = { ...(cur.value ?? {}), ...rec, host, updatedAt: new Date().toISOString() };
      if (await this.txn([[this.k.vm(rec.name), 'Mod', cur.mod], [this.k.alloc(host), 'Mod', a.mod]], [[this.k.vm(rec.name), record], [this.k.alloc(host), { vms }]])) return;
      await jitter(i);
    }
    throw new ApiError(503, `claim: gave up after ${TXN_RETRIES} conflicting transactions`);
  }

  /** Drop `name` from `host`'s allocation, and its record if the record still names that host. */
  async release(host: string, name: string, recordToo: boolean): Promise<void> {
    for (let i = 0; i < TXN_RETRIES; i++) {
      const [cur, a] = await Promise.all([this.vm(name), this.alloc(host)]);
      const dropRecord = recordToo && cur.value?.host === host;
      const hasAlloc = a.value?.vms?.[name] !== undefined;
      if (!dropRecord && !hasAlloc) return;
      const vms = { ...(a.value?.vms ?? {}) };
      delete vms[name];
      if (await this.txn([[this.k.vm(name), 'Mod', cur.mod], [this.k.alloc(host), 'Mod', a.mod]], hasAlloc ? [[this.k.alloc(host), { vms }]] : [], dropRecord ? [this.k.vm(name)] : [])) return;
      await jitter(i);
    }
  }

  /** Update the state (and definition) of a VM whose record names this host. */
  async publishVm(host: string, rec: Omit<VmRecord, 'host' | 'updatedAt'>): Promise<'ok' | 'elsewhere'> {
    for (let i = 0; i < TXN_RETRIES; i++) {
      const cur = await this.vm(rec.name);
      if (cur.value && cur.value.host !== host) return 'elsewhere';
      const record: VmRecord = { ...rec, host, updatedAt: new Date().toISOString() };
      if (await this.txn([[this.k.vm(rec.name), 'Mod', cur.mod]], [[this.k.vm(rec.name), record]])) return 'ok';
      await jitter(i);
    }
    return 'ok';
  }

  /** Record an event in the ring (the oldest slot is overwritten). */
  async addEvent(e: Omit<FleetEvent, 'seq' | 'time'>): Promise<void> {
    for (let i = 0; i < TXN_RETRIES; i++) {
      this.ops++;
      const r = await this.kv.get(this.k.eventSeq).exec();
      const kv = r.kvs[0];
      const seq = kv ? Number(kv.value.toString('utf8')) || 0 : 0;
      const ev: FleetEvent = { ...e, seq: seq + 1, time: new Date().toISOString(), message: e.message.slice(0, 500) };
      this.ops++;
      const res = await this.kv
        .if(this.k.eventSeq, 'Mod', '==', kv ? kv.mod_revision : '0')
        .then(this.kv.put(this.k.eventSeq).value(String(seq + 1)), this.kv.put(this.k.event(seq % FLEET_EVENTS)).value(JSON.stringify(ev)))
        .commit();
      if (res.succeeded) return;
      await jitter(i);
    }
  }

  async events(): Promise<FleetEvent[]> {
    const m = await this.getPrefix<FleetEvent>(this.k.events);
    return [...m.values()].map((v) => v.value).filter((e): e is FleetEvent => e !== null && typeof e.seq === 'number').sort((a, b) => a.seq - b.seq);
  }
}

function wellFormedHost(key: string, h: HostRecord): boolean {
  const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  return h.name === key && NAME_RE.test(h.name) && typeof h.url === 'string' && /^https?:\/\/[^\s/]+\/?$/.test(h.url) &&
    num(h.cores) && num(h.memoryBudgetMiB) && num(h.leaseSeconds) && Array.isArray(h.images) && h.images.every((i) => typeof i === 'string') &&
    typeof h.labels === 'object' && h.labels !== null && !Array.isArray(h.labels);
}

/** A short random wait before retrying a lost transaction, growing with the attempt. */
function jitter(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * (attempt + 1))));
}

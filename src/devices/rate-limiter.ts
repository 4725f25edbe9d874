// Token-bucket I/O rate limiting in the style of Firecracker's rate limiter:
// each device has up to two buckets, one counting bytes (bandwidth) and one
// counting operations. A bucket holds up to `size` tokens, gains `size` tokens
// every `refillMs` (continuously, not in steps) and may carry a one-time burst
// that is spent first and never refills. A request proceeds only when every
// configured bucket can pay for it, and then pays in all of them at once.
//
// No Node APIs: time comes from a clock function in milliseconds. The machine
// hands in guest time in deterministic runs (so throttling happens at the same
// instruction on every run) and the host's monotonic clock otherwise.

/** One bucket: `size` tokens per `refillMs` milliseconds, plus an optional one-time burst. */
export interface BucketConfig {
  /** Bucket capacity in tokens (bytes or operations); also the amount refilled per refillMs. */
  size: number;
  /** Time for an empty bucket to fill up completely, in milliseconds. */
  refillMs: number;
  /** Extra tokens available once, spent before the bucket's own (default 0). */
  oneTimeBurst?: number;
}

/**
 * Limits of one device. A missing or null bucket means "no limit" for that
 * dimension; `{}` removes every limit.
 */
export interface RateLimits {
  /** Bytes moved (virtio-blk: data of reads and writes). */
  bandwidth?: BucketConfig | null;
  /** Requests (virtio-blk: every request except GET_ID). */
  ops?: BucketConfig | null;
}

/** Counters a limiter keeps for monitoring. */
export interface RateLimiterCounters {
  /** Bytes and operations let through. */
  bytes: number;
  ops: number;
  /** How often a request had to wait (one event per blocked episode). */
  throttledEvents: number;
  /** Total clock time requests spent waiting for tokens, ms (includes a wait still running). */
  throttledMs: number;
}

/** Tokens a check may be short by and still pass: refill arithmetic is in floating point. */
const EPSILON = 1e-6;

/** Why a bucket configuration is unusable, or null when it is fine. */
export function checkBucket(c: BucketConfig, what = 'bucket'): string | null {
  if (!Number.isFinite(c.size) || c.size <= 0) return `${what}: size must be a positive number (got ${c.size})`;
  if (!Number.isFinite(c.refillMs) || c.refillMs <= 0) return `${what}: refill time must be a positive number of ms (got ${c.refillMs})`;
  const b = c.oneTimeBurst ?? 0;
  if (!Number.isFinite(b) || b < 0) return `${what}: one-time burst must be zero or more (got ${b})`;
  return null;
}

/** Why a set of limits is unusable, or null. */
export function checkLimits(l: RateLimits): string | null {
  if (l.bandwidth) {
    const e = checkBucket(l.bandwidth, 'bandwidth');
    if (e) return e;
  }
  if (l.ops) return checkBucket(l.ops, 'ops');
  return null;
}

/** Bucket for "N per second" with an optional burst: the form the command line uses. */
export function perSecond(rate: number, burst?: number): BucketConfig {
  return burst ? { size: rate, refillMs: 1000, oneTimeBurst: burst } : { size: rate, refillMs: 1000 };
}

export class TokenBucket {
  readonly size: number;
  readonly refillMs: number;
  /** Regular tokens; negative after a request larger than the bucket (a debt that refills first). */
  private budget: number;
  /** What is left of the one-time burst. */
  private burst: number;
  private last: number;

  constructor(config: BucketConfig, now: number) {
    const err = checkBucket(config);
    if (err) throw new RangeError(err);
    this.size = config.size;
    this.refillMs = config.refillMs;
    this.budget = config.size; // a new bucket starts full, as Firecracker's does
    this.burst = config.oneTimeBurst ?? 0;
    this.last = now;
  }

  /** Tokens per millisecond. */
  get rate(): number {
    return this.size / this.refillMs;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.budget = Math.min(this.size, this.budget + (now - this.last) * this.rate);
      this.last = now;
    }
  }

  /**
   * What has to be available for a request of n tokens. A request larger than
   * everything the bucket can ever hold is let through once the bucket is full,
   * leaving a debt, so large requests are slowed down instead of never served.
   */
  private need(n: number): number {
    return Math.min(n, this.size + this.burst);
  }

  /** Whether n tokens could be taken now. */
  canTake(n: number, now: number): boolean {
    this.refill(now);
    return this.burst + this.budget + EPSILON >= this.need(n);
  }

  /** Take n tokens (call after canTake said yes): from the burst first, then the budget. */
  take(n: number, now: number): void {
    this.refill(now);
    const fromBurst = Math.min(this.burst, n);
    this.burst -= fromBurst;
    this.budget -= n - fromBurst;
  }

  /** Milliseconds until n tokens can be taken (0 if they can now). */
  delayFor(n: number, now: number): number {
    this.refill(now);
    const missing = this.need(n) - this.burst - this.budget;
    return missing <= EPSILON ? 0 : missing / this.rate;
  }

  /** Tokens available now (burst included). */
  available(now: number): number {
    this.refill(now);
    return this.burst + this.budget;
  }

  save(): TokenBucketState {
    return { budget: this.budget, burst: this.burst, last: this.last };
  }

  /** Restore saved levels (validated by RateLimiter.restore). */
  restoreLevels(s: TokenBucketState): void {
    this.budget = s.budget;
    this.burst = s.burst;
    this.last = s.last;
  }
}

/** A bucket's levels: tokens, burst left, and the clock time of its last refill (device clock ms). */
export interface TokenBucketState {
  budget: number;
  burst: number;
  last: number;
}

/** Saved state of a RateLimiter: its limits, bucket levels, counters and the waiting request. */
export interface RateLimiterState {
  limits: RateLimits;
  bandwidth: TokenBucketState | null;
  ops: TokenBucketState | null;
  counters: RateLimiterCounters;
  waiting: { bytes: number; ops: number; since: number } | null;
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function bucketProblem(cfg: BucketConfig | null | undefined, st: unknown, what: string): string | null {
  if (!cfg) return st === null || st === undefined ? null : `${what}: levels saved for a bucket that is not configured`;
  if (typeof st !== 'object' || st === null) return `${what}: bucket levels missing`;
  const b = st as Record<string, unknown>;
  if (!isNum(b.budget) || !isNum(b.burst) || !isNum(b.last)) return `${what}: bucket levels must be finite numbers`;
  // At most the size; negative is a debt left by a request larger than the bucket.
  if (b.budget > cfg.size) return `${what}: budget ${b.budget} is above the bucket size`;
  if (b.burst < 0 || b.burst > (cfg.oneTimeBurst ?? 0)) return `${what}: burst ${b.burst} out of range`;
  return null;
}

/** Two optional buckets, counters, and the memory of the request that is waiting. */
export class RateLimiter {
  private bandwidth: TokenBucket | null = null;
  private ops: TokenBucket | null = null;
  private limits: RateLimits = {};
  private readonly counters: RateLimiterCounters = { bytes: 0, ops: 0, throttledEvents: 0, throttledMs: 0 };
  /** The request that was refused and will be retried, and since when it waits. */
  private waiting: { bytes: number; ops: number; since: number } | null = null;

  constructor(private readonly clock: () => number, limits: RateLimits = {}) {
    this.update(limits);
  }

  /** True when at least one bucket is configured. */
  get active(): boolean {
    return this.bandwidth !== null || this.ops !== null;
  }

  /** The limits in force (copies of what update() was given). */
  get config(): RateLimits {
    return { bandwidth: this.limits.bandwidth ? { ...this.limits.bandwidth } : null, ops: this.limits.ops ? { ...this.limits.ops } : null };
  }

  /**
   * Replace the limits. A changed bucket starts over full (with its burst); an
   * unchanged one keeps its state, so re-sending the same limits changes nothing.
   * Throws RangeError for a bad configuration, leaving the old one in force.
   */
  update(limits: RateLimits): void {
    const err = checkLimits(limits);
    if (err) throw new RangeError(err);
    const now = this.clock();
    const same = (a: BucketConfig | null | undefined, b: BucketConfig | null | undefined) =>
      (!a && !b) || (!!a && !!b && a.size === b.size && a.refillMs === b.refillMs && (a.oneTimeBurst ?? 0) === (b.oneTimeBurst ?? 0));
    if (!same(limits.bandwidth, this.limits.bandwidth)) this.bandwidth = limits.bandwidth ? new TokenBucket(limits.bandwidth, now) : null;
    if (!same(limits.ops, this.limits.ops)) this.ops = limits.ops ? new TokenBucket(limits.ops, now) : null;
    this.limits = { bandwidth: limits.bandwidth ? { ...limits.bandwidth } : null, ops: limits.ops ? { ...limits.ops } : null };
  }

  /**
   * Pay for a request of `bytes` bytes and `ops` operations if every bucket can;
   * otherwise take nothing, remember the request as waiting and return false.
   */
  tryConsume(bytes: number, ops: number): boolean {
    const now = this.clock();
    const bw = this.bandwidth;
    const op = this.ops;
    if ((bw && bytes > 0 && !bw.canTake(bytes, now)) || (op && ops > 0 && !op.canTake(ops, now))) {
      if (!this.waiting) {
        this.waiting = { bytes, ops, since: now };
        this.counters.throttledEvents++;
      } else {
        this.waiting.bytes = bytes;
        this.waiting.ops = ops;
      }
      return false;
    }
    if (bw && bytes > 0) bw.take(bytes, now);
    if (op && ops > 0) op.take(ops, now);
    this.counters.bytes += bytes;
    this.counters.ops += ops;
    if (this.waiting) {
      this.counters.throttledMs += Math.max(0, now - this.waiting.since);
      this.waiting = null;
    }
    return true;
  }

  /** True while a refused request waits to be retried. */
  get blocked(): boolean {
    return this.waiting !== null;
  }

  /**
   * Milliseconds until the waiting request fits (0 when nothing waits or it fits
   * now). The device retries at that moment instead of polling.
   */
  nextRefillDelay(): number {
    const w = this.waiting;
    if (!w) return 0;
    const now = this.clock();
    let d = 0;
    if (this.bandwidth && w.bytes > 0) d = Math.max(d, this.bandwidth.delayFor(w.bytes, now));
    if (this.ops && w.ops > 0) d = Math.max(d, this.ops.delayFor(w.ops, now));
    return d;
  }

  /** Forget a waiting request (the device was reset); its wait so far still counts. */
  cancelWaiting(): void {
    if (this.waiting) this.counters.throttledMs += Math.max(0, this.clock() - this.waiting.since);
    this.waiting = null;
  }

  /** A snapshot of the counters. */
  stats(): RateLimiterCounters {
    const c = { ...this.counters };
    if (this.waiting) c.throttledMs += Math.max(0, this.clock() - this.waiting.since);
    return c;
  }

  save(): RateLimiterState {
    return {
      limits: this.config,
      bandwidth: this.bandwidth?.save() ?? null,
      ops: this.ops?.save() ?? null,
      counters: { ...this.counters },
      waiting: this.waiting ? { ...this.waiting } : null,
    };
  }

  /**
   * Restore limits, levels, counters and the waiting request. The clock must be
   * the same device clock the state was saved on (guest time, or the host clock
   * rebased by the restoring worker). Returns why not, changing nothing, or null.
   */
  restore(state: unknown): string | null {
    if (typeof state !== 'object' || state === null) return 'rate limiter state is not an object';
    const s = state as Record<string, unknown>;
    if (typeof s.limits !== 'object' || s.limits === null) return 'rate limiter limits missing';
    const limits = s.limits as RateLimits;
    const bad = checkLimits(limits);
    if (bad) return `rate limiter: ${bad}`;
    const bw = bucketProblem(limits.bandwidth, s.bandwidth, 'bandwidth') ?? bucketProblem(limits.ops, s.ops, 'ops');
    if (bw) return `rate limiter: ${bw}`;
    const c = s.counters as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null || !['bytes', 'ops', 'throttledEvents', 'throttledMs'].every((k) => isNum(c[k]) && (c[k] as number) >= 0)) {
      return 'rate limiter counters must be non-negative numbers';
    }
    const w = s.waiting as Record<string, unknown> | null;
    if (w !== null && (typeof w !== 'object' || !isNum(w.bytes) || !isNum(w.ops) || !isNum(w.since) || w.bytes < 0 || w.ops < 0)) {
      return 'rate limiter waiting request is malformed';
    }
    this.limits = {};
    this.update(limits);
    if (this.bandwidth) this.bandwidth.restoreLevels(s.bandwidth as TokenBucketState);
    if (this.ops) this.ops.restoreLevels(s.ops as TokenBucketState);
    Object.assign(this.counters, { bytes: c.bytes, ops: c.ops, throttledEvents: c.throttledEvents, throttledMs: c.throttledMs });
    this.waiting = w ? { bytes: w.bytes as number, ops: w.ops as number, since: w.since as number } : null;
    return null;
  }

  /** Tokens available now in each bucket (null: no such bucket); for tests and monitoring. */
  available(): { bandwidth: number | null; ops: number | null } {
    const now = this.clock();
    return { bandwidth: this.bandwidth?.available(now) ?? null, ops: this.ops?.available(now) ?? null };
  }
}

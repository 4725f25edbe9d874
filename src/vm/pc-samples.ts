// Where the guest spends its instructions (`--stats`): the pc at the end of
// every slice, weighted by the instructions the slice ran, named by the
// kernel's System.map when there is one. Slice ends fall where the budget
// runs out, so a function's share of the samples estimates its share of the
// instructions. This is how a realtime boot was seen to hash for a third of
// its instructions in the kernel's jitter entropy source (a time that stood
// still within a slice).

/** Distinct pc buckets kept; later new ones go to "other" (a long run must not grow without bound). */
const MAX_BUCKETS = 65_536;
/** Bucket granularity: a pc's low bits are dropped (one bucket per 16 bytes of code). */
const SHIFT = 4n;

export class PcSamples {
  private readonly byBucket = new Map<bigint, number>();
  private other = 0;
  private total = 0;

  add(pc: bigint, weight: number): void {
    if (!(weight > 0)) return;
    this.total += weight;
    const k = BigInt.asUintN(64, pc) >> SHIFT;
    const w = this.byBucket.get(k);
    if (w !== undefined) this.byBucket.set(k, w + weight);
    else if (this.byBucket.size < MAX_BUCKETS) this.byBucket.set(k, weight);
    else this.other += weight;
  }

  /**
   * The `n` heaviest names with their shares, e.g. "memset 12.5%, user 9.1%".
   * `name` gives a pc's function (null: not a kernel symbol; such pcs count as
   * "user" when below the kernel's half of the address space, else "unknown").
   */
  top(name: (pc: bigint) => string | null, n: number): string {
    if (this.total === 0) return 'none';
    const byName = new Map<string, number>();
    for (const [k, w] of this.byBucket) {
      const pc = k << SHIFT;
      const s = name(pc) ?? (pc < 0x8000_0000_0000_0000n ? 'user' : 'unknown');
      byName.set(s, (byName.get(s) ?? 0) + w);
    }
    if (this.other > 0) byName.set('other', (byName.get('other') ?? 0) + this.other);
    return [...byName]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([s, w]) => `${s} ${((100 * w) / this.total).toFixed(1)}%`)
      .join(', ');
  }
}

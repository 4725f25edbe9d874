// Time limits for whole tests. A limit is there to end a test that is stuck,
// not to measure speed: a loaded host (CI beside other jobs, a developer's
// build) slows every guest alike, so each limit grows with the host's load per
// core at the moment the test file registers its tests.

import { availableParallelism, loadavg } from 'node:os';

/** How much longer than on an idle host things may take: load per core, 1 to 12. */
export function loadFactor(): number {
  return Math.min(12, Math.max(1, loadavg()[0]! / Math.max(1, availableParallelism())));
}

/** `ms` scaled by the host's load (see loadFactor). */
export function budget(ms: number): number {
  return Math.round(ms * loadFactor());
}

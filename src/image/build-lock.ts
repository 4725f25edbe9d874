// One build at a time per cache directory: a lock file holding the builder's
// pid. A lock whose process is gone is stale and taken over.

import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageBuildError } from './errors.js';

/**
 * Take `dir/.build.lock`, waiting (polling once a second, up to `maxWaitSeconds`)
 * while another live process holds it. Returns the release function.
 */
export async function acquireBuildLock(
  dir: string,
  what: string,
  maxWaitSeconds: number,
  log: (s: string) => void,
): Promise<() => Promise<void>> {
  const lock = join(dir, '.build.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
      let alive = false;
      if (pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (k) {
          alive = (k as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (!alive) {
        await rm(lock, { force: true });
        continue;
      }
      if (attempt === 0) log(`waiting for another ${what} build (pid ${pid}) to finish...`);
      if (attempt > maxWaitSeconds) throw new ImageBuildError(`timed out waiting for the build lock ${lock}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * The cached build when `cached` finds one; otherwise `build` runs under the
 * directory's build lock. The cache is looked at again once the lock is held:
 * another process may have finished the same build while this one waited.
 */
export async function buildUnlessCached<T>(
  dir: string,
  lock: { what: string; maxWaitSeconds: number; log: (s: string) => void },
  force: boolean,
  cached: () => Promise<T | undefined>,
  build: () => Promise<T>,
): Promise<T & { built: boolean }> {
  if (!force) {
    const hit = await cached();
    if (hit) return { ...hit, built: false };
  }
  await mkdir(dir, { recursive: true });
  const unlock = await acquireBuildLock(dir, lock.what, lock.maxWaitSeconds, lock.log);
  try {
    if (!force) {
      const hit = await cached();
      if (hit) return { ...hit, built: false };
    }
    return { ...(await build()), built: true };
  } finally {
    await unlock();
  }
}

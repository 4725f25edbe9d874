// Shared by the browser tests: Debian's chromium driven by playwright-core.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';

/** playwright-core, or why the browser tests must be skipped. `tools` are commands they also need. */
export async function loadPlaywright(tools: string[] = []): Promise<typeof import('playwright-core') | string> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (Debian package chromium, see scripts/packages.txt)`;
  for (const tool of tools) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${tool} is missing`;
    }
  }
  try {
    return await import('playwright-core');
  } catch {
    return 'the npm package playwright-core is not installed';
  }
}

// Shared by the browser tests: Debian's chromium driven by playwright-core.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

/** A headless chromium with a fresh profile, quiet (no background traffic, no GPU), and its first page. */
export async function launchChromium(
  pw: typeof import('playwright-core'),
  viewport: { width: number; height: number },
): Promise<{ ctx: import('playwright-core').BrowserContext; page: import('playwright-core').Page }> {
  const profile = mkdtempSync(join(tmpdir(), 'tsvisor-chromium-'));
  const ctx = await pw.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return { ctx, page: ctx.pages()[0] ?? (await ctx.newPage()) };
}

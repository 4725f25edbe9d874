// One private temp directory per fuzzing process, removed at exit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string | null = null;

export function tempDir(): string {
  if (dir === null) {
    const d = mkdtempSync(join(tmpdir(), 'tsvisor-fuzz-'));
    dir = d;
    process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  }
  return dir;
}

export function tempPath(name: string): string {
  return join(tempDir(), name);
}

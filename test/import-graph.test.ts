// The import structure docs/ARCHITECTURE.md promises: no cycles between
// modules, imports only downwards between layers, and a core free of Node.
// Read from the sources (not dist), so type-only imports count too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Lower numbers are lower layers; an import may only go to its own layer or a lower one. */
const LAYER_RANK: Record<string, number> = {
  common: 0, cpu: 0, gdb: 0, storage: 1, devices: 2, jit: 3, net: 3, machine: 4, image: 5, vm: 6, host: 7, cli: 8,
};
/** Named exceptions, each with its reason. */
const ALLOWED_UPWARD = new Map<string, string>([
  // The generated layout constants live beside machine/layout.ts; the translator needs them.
  ['jit -> machine/layout.generated.ts', 'generated leaf module without imports'],
]);
const CORE_LAYERS = new Set(['cpu', 'machine', 'devices', 'jit']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const IMPORT_RE = /(?:import|export)\s[^'";]*?from\s+['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|^import\s+['"]([^'"]+)['"]/gms;

interface Graph { edges: Map<string, Set<string>>; bare: Map<string, Set<string>> }

function buildGraph(): Graph {
  const edges = new Map<string, Set<string>>();
  const bare = new Map<string, Set<string>>();
  for (const file of sourceFiles(SRC)) {
    const rel = relative(SRC, file);
    const text = readFileSync(file, 'utf8');
    const targets = new Set<string>();
    const bareTargets = new Set<string>();
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith('.')) { bareTargets.add(spec); continue; }
      let target = normalize(join(dirname(rel), spec));
      if (target.endsWith('.js')) target = target.slice(0, -3);
      if (!target.endsWith('.ts')) target += '.ts';
      assert.ok(existsSync(join(SRC, target)), `${rel} imports ${spec}, which does not exist`);
      targets.add(target);
    }
    edges.set(rel, targets);
    bare.set(rel, bareTargets);
  }
  return { edges, bare };
}

const layerOf = (rel: string): string => rel.split('/')[0]!;

/** Strongly connected components of more than one module (Tarjan), i.e. import cycles. */
function cycles(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1) found.push(comp.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = buildGraph();

test('the import graph has no cycles', () => {
  assert.ok(graph.edges.size > 100, `read ${graph.edges.size} modules`);
  assert.deepEqual(cycles(graph.edges), []);
});

test('the cycle finder finds a planted cycle', () => {
  // The checker itself must be able to fail: a two-module loop through a third.
  const planted = new Map(graph.edges);
  planted.set('cpu/mmu.ts', new Set([...(planted.get('cpu/mmu.ts') ?? []), 'cpu/trap.ts']));
  const found = cycles(planted);
  assert.ok(found.some((c) => c.includes('cpu/mmu.ts') && c.includes('cpu/trap.ts')), JSON.stringify(found));
});

test('imports between layers point downwards only', () => {
  const wrong: string[] = [];
  for (const [from, targets] of graph.edges) {
    const a = layerOf(from);
    assert.ok(a in LAYER_RANK || !from.includes('/'), `${from}: layer ${a} has no rank in this test`);
    for (const to of targets) {
      const b = layerOf(to);
      if (a === b || !(a in LAYER_RANK) || !(b in LAYER_RANK)) continue;
      if (LAYER_RANK[b]! <= LAYER_RANK[a]!) continue;
      if (ALLOWED_UPWARD.has(`${a} -> ${to}`)) continue;
      wrong.push(`${from} -> ${to}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the core (cpu, machine, devices, jit) uses no Node API', () => {
  const wrong: string[] = [];
  for (const [from, specs] of graph.bare) {
    if (!CORE_LAYERS.has(layerOf(from))) continue;
    for (const spec of specs) if (spec.startsWith('node:') || /^(fs|path|os|child_process|net|worker_threads|crypto)$/.test(spec)) wrong.push(`${from}: ${spec}`);
  }
  assert.deepEqual(wrong, []);
});

test('the AssemblyScript core imports only itself', () => {
  const wrong: string[] = [];
  for (const [from, targets] of graph.edges) {
    if (layerOf(from) !== 'cpu') continue;
    for (const to of targets) if (layerOf(to) !== 'cpu') wrong.push(`${from} -> ${to}`);
    for (const spec of graph.bare.get(from) ?? []) wrong.push(`${from}: ${spec}`);
  }
  assert.deepEqual(wrong, []);
});

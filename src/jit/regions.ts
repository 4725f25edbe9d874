// Strongly connected components, for planning regions of translated code
// (src/jit/translate.ts, planRegion): a region is worth making only when some of
// its blocks lead from one to another in a cycle.

/** Tarjan's strongly connected components of a graph given as adjacency lists (iterative). */
export function stronglyConnected(edges: number[][]): number[][] {
  const n = edges.length;
  const index = new Array<number>(n).fill(-1);
  const low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const stack: number[] = [];
  const comps: number[][] = [];
  let next = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] >= 0) continue;
    const work: { v: number; e: number }[] = [{ v: root, e: 0 }];
    index[root] = low[root] = next++;
    stack.push(root);
    onStack[root] = true;
    while (work.length) {
      const top = work[work.length - 1];
      if (top.e < edges[top.v].length) {
        const w = edges[top.v][top.e++];
        if (index[w] < 0) {
          index[w] = low[w] = next++;
          stack.push(w);
          onStack[w] = true;
          work.push({ v: w, e: 0 });
        } else if (onStack[w]) {
          low[top.v] = Math.min(low[top.v], index[w]);
        }
        continue;
      }
      work.pop();
      if (work.length) low[work[work.length - 1].v] = Math.min(low[work[work.length - 1].v], low[top.v]);
      if (low[top.v] === index[top.v]) {
        const comp: number[] = [];
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = false;
          comp.push(w);
        } while (w !== top.v);
        comps.push(comp);
      }
    }
  }
  return comps;
}

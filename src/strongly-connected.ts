/**
 * The strongly connected components of a directed graph (Tarjan), in the order
 * they complete, visiting `roots` in the order given and each vertex's edges in
 * the order `edgesOf` gives them. Iterative: a require chain of a bundle's
 * packages can be deeper than the call stack. Used by the module graph (cycles
 * of `depends-on`) and the loader (require cycles); it sits below both.
 */
export function stronglyConnected(
  roots: Iterable<string>,
  edgesOf: (vertex: string) => readonly string[],
): string[][] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const enter = (v: string) => {
    index.set(v, counter)
    low.set(v, counter++)
    stack.push(v)
    onStack.add(v)
    return { vertex: v, edges: edgesOf(v), next: 0 }
  }
  for (const root of roots) {
    if (index.has(root)) continue
    const work = [enter(root)]
    while (work.length > 0) {
      const frame = work[work.length - 1]!
      if (frame.next < frame.edges.length) {
        const w = frame.edges[frame.next++]!
        if (!index.has(w)) work.push(enter(w))
        else if (onStack.has(w)) low.set(frame.vertex, Math.min(low.get(frame.vertex)!, index.get(w)!))
        continue
      }
      work.pop()
      const v = frame.vertex
      const parent = work[work.length - 1]
      if (parent) low.set(parent.vertex, Math.min(low.get(parent.vertex)!, low.get(v)!))
      if (low.get(v) === index.get(v)) {
        const component: string[] = []
        let w: string
        do {
          w = stack.pop()!
          onStack.delete(w)
          component.push(w)
        } while (w !== v)
        found.push(component)
      }
    }
  }
  return found
}

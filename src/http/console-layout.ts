/** What the graph needs of a module (a row of `GET /modules`). */
export interface GraphModule {
  readonly name: string
  readonly state: string
  readonly dependsOn: readonly string[]
  readonly optionalDependsOn: readonly string[]
}

/** Where a node sits, in SVG user units. */
export interface NodeBox {
  readonly x: number
  readonly y: number
  readonly h: number
}

export const nodeW = 160
export const nodeH = 30
/** Room under a failed node's name for its error code. */
export const failedExtraH = 12
const gapX = 70
const gapY = 14

/** A module's dependencies that are in the graph (an optional one may be absent). */
export const depsIn = (m: GraphModule, names: ReadonlySet<string>): string[] =>
  [...m.dependsOn, ...m.optionalDependsOn].filter((d) => names.has(d))

/**
 * The console's layered layout: a module one column right of the deepest module it depends
 * on; in a column, near the mean row of what it depends on, then by name. Computed by the
 * admin listener (for the page's first view and for its live updates alike), so the browser
 * only draws.
 */
export function layoutGraph(modules: readonly GraphModule[]): {
  readonly pos: ReadonlyMap<string, NodeBox>
  readonly width: number
  readonly height: number
} {
  const byName = new Map(modules.map((m) => [m.name, m]))
  const names = new Set(byName.keys())
  const layer = new Map<string, number>()
  const visiting = new Set<string>()
  const layerOf = (name: string): number => {
    const known = layer.get(name)
    if (known !== undefined) return known
    if (visiting.has(name)) return 0 // a cycle (the host refuses it): drawn, not recursed
    visiting.add(name)
    const deps = depsIn(byName.get(name)!, names)
    const l = deps.length === 0 ? 0 : 1 + Math.max(...deps.map(layerOf))
    visiting.delete(name)
    layer.set(name, l)
    return l
  }
  const columns: GraphModule[][] = []
  for (const m of modules) {
    const l = layerOf(m.name)
    columns[l] ??= []
    columns[l].push(m)
  }
  const row = new Map<string, number>()
  const pos = new Map<string, NodeBox>()
  let width = 0
  let height = 0
  for (const [x, column] of columns.entries()) {
    if (!column) continue
    const score = (m: GraphModule) => {
      const ys = depsIn(m, names)
        .map((d) => row.get(d))
        .filter((y) => y !== undefined)
      return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : 0
    }
    const scores = new Map(column.map((m) => [m.name, score(m)]))
    column.sort((a, b) => scores.get(a.name)! - scores.get(b.name)! || a.name.localeCompare(b.name))
    let y = 0
    for (const [i, m] of column.entries()) {
      const h = nodeH + (m.state === 'failed' ? failedExtraH : 0)
      row.set(m.name, i)
      pos.set(m.name, { x: x * (nodeW + gapX), y, h })
      y += h + gapY
      width = Math.max(width, x * (nodeW + gapX) + nodeW)
      height = Math.max(height, y - gapY)
    }
  }
  return { pos, width, height }
}

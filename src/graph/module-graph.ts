import type { Manifest } from '../bundle/manifest.js'
import { type NyalaError, nyalaError } from '../errors.js'
import { stronglyConnected } from '../strongly-connected.js'
import { DependentsIndex } from './dependents-index.js'

export interface GraphNode {
  readonly name: string
  readonly dependsOn: readonly string[]
  readonly optionalDependsOn: readonly string[]
}

export interface GraphPlan {
  /** Every module, dependencies before dependents (stop in reverse). Deterministic. */
  readonly order: readonly string[]
  /** Modules that cannot start, with the reason: cycles, missing and failed dependencies. */
  readonly failures: ReadonlyMap<string, NyalaError>
}

type Nodes = ReadonlyMap<string, GraphNode>

/** A module's node: its manifest's dependencies (none without a manifest: it failed to open). */
export function nodeOf(name: string, manifest: Manifest | undefined): GraphNode {
  return {
    name,
    dependsOn: manifest?.dependsOn ?? [],
    optionalDependsOn: manifest?.optionalDependsOn ?? [],
  }
}

function toMap(nodes: Iterable<GraphNode>): Nodes {
  return new Map([...nodes].map((n) => [n.name, n]))
}

/** The dependencies of a node that are present: required and optional alike order the start. */
function edgesOf(node: GraphNode, nodes: Nodes): string[] {
  return [...node.dependsOn, ...node.optionalDependsOn].filter((d) => nodes.has(d)).sort()
}

/** Strongly connected components (Tarjan), each sorted; a cycle is one of size > 1 or a self-loop. */
function cycles(nodes: Nodes): string[][] {
  const edges = (v: string) => edgesOf(nodes.get(v)!, nodes)
  return stronglyConnected([...nodes.keys()].sort(), edges)
    .filter((scc) => scc.length > 1 || edges(scc[0]!).includes(scc[0]!))
    .map((scc) => scc.sort())
}

/** One concrete cycle through the component, written `a -> b -> a`. */
function describeCycle(scc: readonly string[], nodes: Nodes): string {
  const members = new Set(scc)
  const start = scc[0]!
  const path = [start]
  const seen = new Set([start])
  let current = start
  for (;;) {
    const next = edgesOf(nodes.get(current)!, nodes).find(
      (d) => members.has(d) && (d === start || !seen.has(d)),
    )
    if (next === undefined || next === start) break
    path.push(next)
    seen.add(next)
    current = next
  }
  return [...path, start].join(' -> ')
}

/** Dependencies before dependents; modules in a cycle come in name order. */
export function dependencyOrder(nodes: Iterable<GraphNode>): string[] {
  const map = toMap(nodes)
  const order: string[] = []
  const done = new Set<string>()
  const visiting = new Set<string>()
  const visit = (name: string) => {
    if (done.has(name) || visiting.has(name)) return
    visiting.add(name)
    for (const dep of edgesOf(map.get(name)!, map)) visit(dep)
    visiting.delete(name)
    done.add(name)
    order.push(name)
  }
  for (const name of [...map.keys()].sort()) visit(name)
  return order
}

/**
 * Orders the modules and finds those that cannot start: members of a cycle
 * (NYALA_ERR_DEPENDENCY_CYCLE), modules missing a required dependency
 * (NYALA_ERR_DEPENDENCY_MISSING), and their dependents, transitively
 * (NYALA_ERR_DEPENDENCY_FAILED). Optional dependencies order the start but a
 * missing or failed one stops nothing.
 *
 * `present` tells which modules outside `nodes` exist: a reload plans only its
 * affected set, whose dependencies outside the set are already placed (a new
 * cycle runs through a changed module, so all of it lies inside the set).
 */
export function planGraph(
  nodes: Iterable<GraphNode>,
  present: (name: string) => boolean = () => false,
): GraphPlan {
  const map = toMap(nodes)
  const failures = new Map<string, NyalaError>()
  for (const scc of cycles(map)) {
    const cycle = describeCycle(scc, map)
    for (const module of scc)
      failures.set(module, nyalaError('NYALA_ERR_DEPENDENCY_CYCLE', { module, cycle }))
  }
  const order = dependencyOrder(map.values())
  for (const name of order) {
    if (failures.has(name)) continue
    const node = map.get(name)!
    const missing = node.dependsOn.find((d) => !map.has(d) && !present(d))
    if (missing !== undefined) {
      failures.set(name, nyalaError('NYALA_ERR_DEPENDENCY_MISSING', { module: name, dependency: missing }))
      continue
    }
    const failed = node.dependsOn.find((d) => failures.has(d))
    if (failed !== undefined) {
      failures.set(name, nyalaError('NYALA_ERR_DEPENDENCY_FAILED', { module: name, dependency: failed }))
    }
  }
  return { order, failures }
}

/**
 * The affected set of a change: the changed modules and every module that
 * depends on them, transitively (through optional dependencies too, since
 * those hold references as well), in dependency order. Nothing else is touched.
 */
export function affectedBy(nodes: Iterable<GraphNode>, changed: Iterable<string>): string[] {
  const map = toMap(nodes)
  const index = new DependentsIndex()
  for (const node of map.values()) index.set(node)
  return orderAffected(index.closure(changed), (name) => map.get(name))
}

/**
 * An affected set in dependency order, given each member's node (`undefined`
 * for a module that is not, or no longer, in the graph: it comes last). The
 * set is closed under "depends on it", so ordering the set alone keeps
 * dependency order and costs what the set costs.
 */
export function orderAffected(
  affected: ReadonlySet<string>,
  nodeOfName: (name: string) => GraphNode | undefined,
): string[] {
  const nodes: GraphNode[] = []
  const absent: string[] = []
  for (const name of affected) {
    const node = nodeOfName(name)
    if (node) nodes.push(node)
    else absent.push(name)
  }
  return [...dependencyOrder(nodes), ...absent]
}

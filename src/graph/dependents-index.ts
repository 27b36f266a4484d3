import type { GraphNode } from './module-graph.js'

/**
 * Who depends on whom (required and optional dependencies alike), kept up to
 * date one module at a time. The host holds one, so a reload finds its
 * affected set by walking from the changed modules to their dependents: the
 * cost follows the size of the change, not of the installation. Dependencies
 * are indexed by name whether or not such a module exists, so a module that
 * arrives finds the dependents that were waiting for it.
 */
export class DependentsIndex {
  readonly #edges = new Map<string, readonly string[]>()
  readonly #dependents = new Map<string, Set<string>>()

  /** Puts a module in the index, or replaces its edges. */
  set(node: GraphNode): void {
    this.delete(node.name)
    const deps = [...new Set([...node.dependsOn, ...node.optionalDependsOn])]
    this.#edges.set(node.name, deps)
    for (const dep of deps) {
      let set = this.#dependents.get(dep)
      if (!set) {
        set = new Set()
        this.#dependents.set(dep, set)
      }
      set.add(node.name)
    }
  }

  delete(name: string): void {
    for (const dep of this.#edges.get(name) ?? []) {
      const set = this.#dependents.get(dep)
      set?.delete(name)
      if (set?.size === 0) this.#dependents.delete(dep)
    }
    this.#edges.delete(name)
  }

  /**
   * The changed modules and everything that depends on them, transitively.
   * Only edges into the changed modules lead anywhere new, so the set is the
   * same before and after the changed modules' own dependencies change.
   */
  closure(changed: Iterable<string>): Set<string> {
    const found = new Set<string>()
    const queue = [...changed]
    while (queue.length > 0) {
      const name = queue.pop()!
      if (found.has(name)) continue
      found.add(name)
      for (const dependent of this.#dependents.get(name) ?? []) queue.push(dependent)
    }
    return found
  }
}

import type { Manifest } from '../bundle/manifest.js'
import type { HostOptions } from '../config/host-options.js'
import { matchesAnyName } from '../config/name-pattern.js'
import { type NyalaError, nyalaError } from '../errors.js'

/** The running modules, as the dependency check looks at them. */
export interface RunningModules {
  get(name: string): { readonly manifest: Manifest | undefined } | undefined
  all(): Iterable<{ readonly name: string; readonly manifest: Manifest | undefined }>
}

/**
 * Which modules run in a thread of their own: `isolation=thread` in their
 * `module.properties`, or matched by the operator's `isolation.thread.modules`
 * (so a module someone else packed is isolated without repacking it).
 */
export class IsolationChoice {
  readonly #modules: readonly string[]

  constructor(options: HostOptions['isolation']) {
    this.#modules = options.modules
  }

  isolated(name: string, manifest: Manifest | undefined): boolean {
    if (manifest?.isolation === 'thread') return true
    return matchesAnyName(this.#modules, name)
  }

  /**
   * Why a module cannot start as declared: objects cannot cross threads, so
   * an isolated module neither uses nor is used by another module.
   * `running` are the running modules with their current manifests.
   */
  dependencyProblem(name: string, manifest: Manifest, running: RunningModules): NyalaError | undefined {
    const declared = [...manifest.dependsOn, ...manifest.optionalDependsOn]
    if (this.isolated(name, manifest)) {
      const dep = declared[0]
      if (dep !== undefined)
        return nyalaError('NYALA_ERR_ISOLATED_DEPENDENCY', {
          module: name,
          relation: 'depend on',
          other: dep,
          isolated: name,
        })
      for (const m of running.all()) {
        if (m.name === name || !m.manifest) continue
        if (m.manifest.dependsOn.includes(name) || m.manifest.optionalDependsOn.includes(name))
          return nyalaError('NYALA_ERR_ISOLATED_DEPENDENCY', {
            module: m.name,
            relation: 'depend on',
            other: name,
            isolated: name,
          })
      }
      return undefined
    }
    // a lookup per declared dependency: a module's start costs what it declares, not what is installed
    for (const dep of declared) {
      const other = running.get(dep)
      if (other && this.isolated(dep, other.manifest))
        return nyalaError('NYALA_ERR_ISOLATED_DEPENDENCY', {
          module: name,
          relation: 'depend on',
          other: dep,
          isolated: dep,
        })
    }
    return undefined
  }
}

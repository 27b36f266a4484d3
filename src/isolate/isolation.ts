import type { Manifest } from '../bundle/manifest.js'
import type { HostOptions } from '../config/host-options.js'
import { matchesAnyName } from '../config/name-pattern.js'
import { type NyalaError, nyalaError } from '../errors.js'

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
   * `modules` are the other modules' current manifests.
   */
  dependencyProblem(
    name: string,
    manifest: Manifest,
    modules: Iterable<{ readonly name: string; readonly manifest: Manifest | undefined }>,
  ): NyalaError | undefined {
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
      for (const m of modules) {
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
    const byName = new Map<string, Manifest | undefined>()
    for (const m of modules) byName.set(m.name, m.manifest)
    for (const dep of declared) {
      if (byName.has(dep) && this.isolated(dep, byName.get(dep)))
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

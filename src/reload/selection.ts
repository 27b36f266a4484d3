import path from 'node:path'
import type { Manifest } from '../bundle/manifest.js'
import type { HostOptions } from '../config/host-options.js'
import { matchesAnyName } from '../config/name-pattern.js'

export interface Decision {
  readonly reload: boolean
  /** Why, for `reload.debug` and the admin API. */
  readonly reason: string
}

/**
 * Which changed modules reload, after Apache2::Reload: `reload.all`, or only
 * the modules matched by `reload.modules`, registered at run time, or marked
 * `reloadable=true` in their own manifest; `reload.directories` limits it to
 * bundles under those directories; `reloadable=false` and modules unregistered
 * through the admin API never reload by themselves. (Dependents of a module
 * that reloads are rebuilt whatever this says: they must not keep references
 * into the old generation.)
 */
export class ReloadSelection {
  readonly #all: boolean
  readonly #modules: readonly string[]
  readonly #directories: readonly string[]
  readonly #unregistered = new Set<string>()
  readonly #registered = new Set<string>()

  constructor(options: HostOptions['reload']) {
    this.#all = options.all
    this.#modules = options.modules
    this.#directories = options.directories.map((d) => (d.endsWith(path.sep) ? d : d + path.sep))
  }

  unregister(name: string): void {
    this.#unregistered.add(name)
    this.#registered.delete(name)
  }

  register(name: string): void {
    this.#unregistered.delete(name)
    this.#registered.add(name)
  }

  isUnregistered(name: string): boolean {
    return this.#unregistered.has(name)
  }

  /**
   * `manifest` is the new bundle's, `running` the serving one's: either saying
   * `reloadable=false` keeps the module as it is (a new bundle that leaves the
   * key out must not unlock a module deployed as not reloadable).
   */
  decide(name: string, source: string, manifest: Manifest | undefined, running?: Manifest): Decision {
    if (running && !running.reloadable)
      return { reload: false, reason: 'reloadable=false in the module.properties of the running bundle' }
    if (manifest && !manifest.reloadable)
      return { reload: false, reason: 'reloadable=false in its module.properties' }
    if (this.#unregistered.has(name))
      return { reload: false, reason: 'unregistered from reloading (admin API)' }
    if (this.#directories.length > 0 && !this.#directories.some((d) => source.startsWith(d))) {
      return { reload: false, reason: 'its bundle is not under reload.directories' }
    }
    if (this.#all) return { reload: true, reason: 'reload.all=true' }
    if (this.#registered.has(name)) return { reload: true, reason: 'registered for reloading (admin API)' }
    if (matchesAnyName(this.#modules, name)) return { reload: true, reason: 'matches reload.modules' }
    if (manifest?.reloadableDeclared)
      return { reload: true, reason: 'reloadable=true in its module.properties' }
    return { reload: false, reason: 'reload.all=false and not matched by reload.modules' }
  }
}

import type { Logger } from 'pino'
import { safeEntryPath } from '../bundle/entry-path.js'
import type { Bundle } from '../bundle/open-bundle.js'
import { nyalaError } from '../errors.js'
import type { CodeOwner } from './code-owner.js'
import { TrackedResources } from './tracked-resources.js'

/** What module code receives as `ctx` in `register(app, ctx)` and `stop(ctx)`. */
export interface ModuleContext {
  readonly name: string
  readonly version: string
  /** Grows by one with every new generation of this module. */
  readonly generation: number
  /** The module's own settings from `config/<name>.properties` (raw strings), or `{}`. */
  readonly config: Readonly<Record<string, string>>
  /** A child of the host logger, bound to this module and generation. */
  readonly log: Logger
  /** What dependency `dep` provided; `undefined` for an absent optional dependency. */
  use<T = unknown>(dep: string): T
  /** Sets what dependents get from `ctx.use(<this module>)`. */
  provide(value: unknown): void
  /** A file of the bundle, from memory (a copy). */
  resource(entry: string): Buffer
  /** Aborted when this generation stops. */
  readonly signal: AbortSignal
  setTimeout(fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout
  setInterval(fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout
  clearTimeout(handle: NodeJS.Timeout | undefined): void
  clearInterval(handle: NodeJS.Timeout | undefined): void
  /** Runs `fn` when this generation stops (last registered, first run). */
  onStop(fn: () => unknown): void
  /** What the previous generation's `handoff` returned, for handing state across a reload; `undefined` for the first. */
  readonly previous: unknown
}

export interface ContextInit {
  readonly bundle: Bundle
  readonly generation: number
  readonly config: Readonly<Record<string, string>>
  readonly log: Logger
  readonly previous: unknown
  /** Looks up what a dependency provides (the host decides which generation). */
  readonly lookup: (dep: string) => unknown
}

/** The context object and the host's handle on what it tracks. */
export interface ContextHandle {
  readonly ctx: ModuleContext
  readonly resources: TrackedResources
  provided(): unknown
}

export function createContext(init: ContextInit, owner: CodeOwner): ContextHandle {
  const { bundle, generation } = init
  const { name, manifest } = bundle
  const declared = new Set([...manifest.dependsOn, ...manifest.optionalDependsOn])
  const resources = new TrackedResources(owner)
  let provided: unknown

  const ctx: ModuleContext = Object.freeze({
    name,
    version: manifest.version,
    generation,
    config: init.config,
    log: init.log,
    use<T>(dep: string): T {
      if (!declared.has(dep))
        throw nyalaError('NYALA_ERR_UNDECLARED_DEPENDENCY', { module: name, dependency: dep })
      return init.lookup(dep) as T
    },
    provide(value: unknown) {
      provided = value
    },
    resource(entry: string): Buffer {
      const key = safeEntryPath(entry)
      const content = key === undefined ? undefined : bundle.files.get(key)
      if (!content) throw nyalaError('NYALA_ERR_RESOURCE_NOT_FOUND', { module: name, entry })
      return Buffer.from(content)
    },
    signal: resources.signal,
    setTimeout: (fn, ms, ...args) => resources.setTimeout(fn, ms, args),
    setInterval: (fn, ms, ...args) => resources.setInterval(fn, ms, args),
    clearTimeout: (handle) => resources.clear(handle),
    clearInterval: (handle) => resources.clear(handle),
    onStop: (fn) => resources.onStop(fn),
    previous: init.previous,
  })
  return { ctx, resources, provided: () => provided }
}

import type { Bundle } from '../bundle/open-bundle.js'
import type { HostOptions } from '../config/host-options.js'
import type { NyalaError } from '../errors.js'
import type { DependentsIndex } from '../graph/dependents-index.js'
import type { Logger } from '../logger.js'
import type { Generation } from '../runtime/generation.js'
import type { ModuleRecord } from '../runtime/module-record.js'
import type { ModuleRuntime } from './module-runtime.js'
import type { RequestGate } from './request-gate.js'

/**
 * What the reload part needs of the host (src/host.ts implements it). Owned
 * here, not taken from the host's class, so reload/ never imports host.ts,
 * which imports reload/ (docs/architecture.md).
 */
export interface ReloadHost {
  readonly options: HostOptions
  readonly log: Logger
  readonly modules: Map<string, ModuleRecord>
  /** The dependency edges of `modules`; whoever changes a record's bundle updates it. */
  readonly graph: DependentsIndex
  /** Start order (dependencies first); a reload updates it. */
  order: readonly string[]
  /** Where module code runs: this process, or worker processes. */
  readonly runtime: ModuleRuntime
  /** Gates of blocking-mode reloads under way, by module; `publish` routes through them. */
  readonly gates: Map<string, RequestGate>
  /** Only the live table's prefix owners: a reload refuses a prefix another module serves. */
  readonly dispatcher: { readonly table: { ownerOf(prefix: string): string | undefined } }
  /** Set once the host began to close: a crash then restarts nothing. */
  readonly closing: boolean
  /** Swaps in a dispatch table made from the records (`names`: only those modules' routes anew). */
  publish(names?: Iterable<string>): void
  /** Marks a module failed with its reason, and logs it. */
  fail(record: ModuleRecord, err: NyalaError): void
  /** Builds and starts a module's next generation; resolves with it or with its error. */
  startGeneration(
    record: ModuleRecord,
    bundle: Bundle,
    previous: unknown,
    lookup: (dep: string) => unknown,
  ): Promise<Generation | NyalaError>
  /** What a running module provided, for `ctx.use`; `undefined` when it does not run. */
  runningProvided(name: string): unknown
}

/** What a committed reload writes: the records, the graph and the start order. */
export type RecordsHost = Pick<ReloadHost, 'modules' | 'graph' | 'order' | 'log'>

/** What the in-process runtime starts generations and swaps the dispatch table with. */
export type RuntimeHost = Pick<
  ReloadHost,
  'options' | 'log' | 'modules' | 'gates' | 'publish' | 'startGeneration' | 'runningProvided'
>

/** What a crash does to the modules through (src/reload/crash-actions.ts). */
export type CrashHost = Pick<
  ReloadHost,
  'options' | 'log' | 'modules' | 'graph' | 'order' | 'closing' | 'fail' | 'publish'
>

import { type Logger, pino } from 'pino'
import type { Bundle } from '../bundle/open-bundle.js'
import type { CodeOwner } from './code-owner.js'
import { createContext, type ModuleContext } from './context.js'

/** What a module's own tests give the context `createTestContext` makes. */
export interface TestContextOptions {
  /** @default 'test' */
  readonly name?: string
  /** @default '0.0.0' */
  readonly version?: string
  /** @default 1 */
  readonly generation?: number
  /** `ctx.config`. @default {} */
  readonly config?: Readonly<Record<string, string>>
  /** `ctx.log`. @default a silent pino logger */
  readonly log?: Logger
  /** `ctx.previous`. @default undefined */
  readonly previous?: unknown
  /** What `ctx.use(dep)` returns, by dependency; these are the declared dependencies. @default {} */
  readonly provides?: Readonly<Record<string, unknown>>
  /** The bundle files `ctx.resource(entry)` reads. @default {} */
  readonly files?: Readonly<Record<string, string | Uint8Array>>
}

/** A context for a module's unit tests, and what the host would see of it. */
export interface TestContext {
  readonly ctx: ModuleContext
  /** What the module passed to `ctx.provide`. */
  provided(): unknown
  /** Stops it as the host stops a generation: aborts `ctx.signal`, runs `onStop` callbacks, clears timers. */
  stop(): Promise<void>
}

/**
 * Makes the `ctx` the host hands to `register`, for testing a module without a host (for
 * instance with Fastify's `inject`): the same object the host builds, over an in-memory bundle.
 */
export function createTestContext(opts: TestContextOptions = {}): TestContext {
  const name = opts.name ?? 'test'
  const provides = opts.provides ?? {}
  const files = new Map(Object.entries(opts.files ?? {}).map(([k, v]) => [k, Buffer.from(v)]))
  const bundle: Bundle = {
    name,
    file: `${name}.zip`,
    kind: 'directory',
    manifest: {
      version: opts.version ?? '0.0.0',
      main: 'index.js',
      dependsOn: Object.keys(provides),
      optionalDependsOn: [],
      prefix: `/${name}`,
      reloadable: true,
      reloadableDeclared: false,
      isolation: 'none',
    },
    files,
    hash: '',
    warnings: [],
    signature: undefined,
  }
  const owner: CodeOwner = { module: name, generation: opts.generation ?? 1, file: bundle.file }
  const handle = createContext(
    {
      bundle,
      generation: owner.generation,
      config: opts.config ?? {},
      log: opts.log ?? pino({ level: 'silent' }),
      previous: opts.previous,
      lookup: (dep) => provides[dep],
    },
    owner,
  )
  return {
    ctx: handle.ctx,
    provided: handle.provided,
    async stop() {
      const errors = await handle.resources.close()
      if (errors.length > 0)
        throw new AggregateError(errors, `${errors.length} onStop callback(s) of ${name} threw`)
    },
  }
}

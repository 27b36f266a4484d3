/**
 * What Nyala offers module authors: `import type { ModuleContext, NyalaModule } from 'nyala'` for
 * the types, `createTestContext` for a module's own tests.
 *
 * Nothing here starts host code: a module's test importing it loads the context code and pino.
 * Module code itself should import types only (`import type`), which no bundle needs at run time.
 */
import type { FastifyInstance } from 'fastify'
import type { ModuleContext } from './runtime/context.js'

export type { ModuleContext } from './runtime/context.js'
export { createTestContext, type TestContext, type TestContextOptions } from './runtime/test-context.js'

/**
 * What a module's main file exports: `register`, and optionally `stop` and `handoff`
 * (as an object, a `module.exports`, or the default export). The host calls them with the
 * exported object as `this`.
 */
export interface NyalaModule {
  /** Registers the module's routes on its own Fastify instance, already under its prefix. */
  register(app: FastifyInstance, ctx: ModuleContext): unknown
  /** Runs when the generation stops, after a new one has taken its traffic and it has drained. */
  stop?(ctx: ModuleContext): unknown
  /**
   * Runs on the old generation while it still serves, just before the new one registers: the
   * value is the new generation's `ctx.previous`. Share state here; close nothing (a failed
   * reload keeps the old generation serving).
   */
  handoff?(ctx: ModuleContext): unknown
}

/** The type of a `register` exported on its own (`export async function register`). */
export type RegisterModule = NyalaModule['register']

/**
 * Returns its argument: gives an object literal the `NyalaModule` types (`app`, `ctx`) without
 * annotations. `export default { ... } satisfies NyalaModule` does the same with no import at run time.
 */
export function defineModule<M extends NyalaModule>(module: M): M {
  return module
}

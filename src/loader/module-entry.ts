import { nyalaError } from '../errors.js'

/** What a module's main file provides: `register`, and optionally `stop` and `handoff`. */
export interface ModuleEntry {
  readonly register: (app: unknown, ctx: unknown) => unknown
  readonly stop?: ((ctx: unknown) => unknown) | undefined
  /** Called on the old generation, while it still serves, just before the new one registers: its value is the new `ctx.previous`. */
  readonly handoff?: ((ctx: unknown) => unknown) | undefined
}

type Fn = (...args: never[]) => unknown

const isFn = (v: unknown): v is Fn => typeof v === 'function'
const field = (obj: unknown, key: string): unknown =>
  obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>)[key] : undefined

/**
 * Finds `register` and `stop` in a main file's exports: the exports may be the
 * register function itself, hold it as `register`, or as `default` (what a
 * transpiler emits for `export default`), itself a function or an object.
 */
export function moduleEntryOf(exports: unknown, bundle: string, entry: string): ModuleEntry {
  const candidates = [exports, field(exports, 'default')]
  for (const c of candidates) {
    const register = isFn(c) ? c : field(c, 'register')
    if (isFn(register)) {
      const stop = field(c, 'stop') ?? field(exports, 'stop')
      const handoff = field(c, 'handoff') ?? field(exports, 'handoff')
      // called with `this` as the object they came from, as `module.exports = { register () { this.x } }` expects
      const owner = isFn(c) ? exports : c
      return {
        register: (register as Fn).bind(owner) as ModuleEntry['register'],
        stop: isFn(stop) ? ((stop as Fn).bind(owner) as ModuleEntry['stop']) : undefined,
        handoff: isFn(handoff) ? ((handoff as Fn).bind(owner) as ModuleEntry['handoff']) : undefined,
      }
    }
  }
  throw nyalaError('NYALA_ERR_MODULE_NO_REGISTER', { bundle, entry })
}

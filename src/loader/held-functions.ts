/**
 * The compiled wrappers of the scripts that running generations loaded, by
 * code cache key (the file's digest and the name it is compiled under:
 * code-cache.ts) and the kind the entry was run as (a package.json `type` can
 * make the same bytes an ES module), so a reload that loads the same file
 * under the same name calls the same wrapper again instead of compiling it:
 * CommonJS as it is, and what the transform made of an ES module or of
 * CommonJS calling `import()` (the same input transforms to the same output).
 * A transformed file's source map stays registered by its code's hash
 * (source-maps.ts) unless 4,096 newer maps pushed it out.
 *
 * Why this is safe: a CommonJS file is one function called with `exports`,
 * `require`, `module`, `__filename` and `__dirname`; each call makes its own
 * module instance, with its own top-level variables and closures, exactly as
 * a fresh compile would. What two generations then share is V8's compiled
 * code: the bytecode of the functions the first one ran, including those V8
 * compiled lazily as they were first called, which a code cache made at
 * compile time does not hold. The one thing a module could see is the wrapper
 * itself (`arguments.callee` at a sloppy-mode top level): the same function
 * in both generations, as it is for two `require.cache`-cleared loads of one
 * file in no Node version.
 *
 * Why this does not leak: a wrapper is held only while a generation that
 * loaded it runs (`hold` returns the release a generation calls when it
 * stops), and the source and code it holds are what that generation's own
 * closures keep alive anyway. The wrapper closes over nothing of a
 * generation: it is compiled in the host's context with no extensions.
 */
/** A compiled entry as the loader runs it (CompiledModule's fields, without what a load adds). */
export interface HeldCode {
  readonly fn: (...args: unknown[]) => unknown
  readonly esm: boolean
  readonly namespace: boolean
  readonly transformed: boolean
}

const held = new Map<string, { code: HeldCode; holders: number }>()

/** Reuses counted (for the module start log line and tests). */
export const heldFunctionStats = { reused: 0 }

/** What a running generation compiled for `key`, if any. */
export function heldCode(key: string): HeldCode | undefined {
  const hit = held.get(key)
  if (hit) heldFunctionStats.reused++
  return hit?.code
}

/** Holds `functions` for a generation that runs them; the returned release is idempotent. */
export function holdFunctions(functions: ReadonlyMap<string, HeldCode>): () => void {
  for (const [key, code] of functions) {
    const entry = held.get(key)
    // a second compile of one key (two loads racing) keeps the first: both are the same code
    if (entry) entry.holders++
    else held.set(key, { code, holders: 1 })
  }
  let released = false
  return () => {
    if (released) return
    released = true
    for (const key of functions.keys()) {
      const entry = held.get(key)
      if (!entry) continue
      if (--entry.holders === 0) held.delete(key)
    }
  }
}

/** Wrappers held now (tests). */
export const heldFunctionCount = (): number => held.size

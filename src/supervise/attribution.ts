import { type CodeOwner, ownerOfThrown } from '../runtime/code-owner.js'

export interface Attribution {
  readonly owner: CodeOwner
  /**
   * How it was found: `timer` (a `ctx` timer's callback threw it), or `stack`
   * (the topmost frame of module code in the error's stack).
   */
  readonly by: 'timer' | 'stack'
  /**
   * True when the stack names a module of which more than one generation is
   * live (the old one draining after a reload): the module is known, the
   * generation is not, and `owner` is its newest generation.
   */
  readonly ambiguous: boolean
}

/**
 * The module generation an uncaught exception or unhandled rejection belongs
 * to, or `undefined` when it is the host's own. `live` lists the generations
 * started and not stopped yet; `stopped` the last ones that stopped, asked
 * only when no live generation matches (a leftover timer of a stopped or
 * removed module).
 */
export function attribute(
  err: unknown,
  live: Iterable<CodeOwner>,
  stopped: Iterable<CodeOwner> = [],
): Attribution | undefined {
  const thrower = ownerOfThrown(err)
  if (thrower) return { owner: thrower, by: 'timer', ambiguous: false }
  const stack = stackOf(err)
  const alive = ownersByStack(stack, live)
  const found = alive.length > 0 ? alive : ownersByStack(stack, stopped)
  if (found.length === 0) return undefined
  const newest = found.reduce((a, b) => (b.generation > a.generation ? b : a))
  // among stopped generations only, which one does not matter: none of them is acted on
  return { owner: newest, by: 'stack', ambiguous: alive.length > 1 }
}

function stackOf(err: unknown): string {
  const stack = typeof err === 'object' && err !== null ? (err as { stack?: unknown }).stack : undefined
  return typeof stack === 'string' ? stack : ''
}

/**
 * The live generations of the module whose code is the topmost stack frame
 * in module code (compiled as `<bundle file>/<entry>`, or named by its file in
 * the cache directory: see CodeOwner.dir): one, or several generations of one
 * module that share the bundle file, or of modules whose bundles have the same
 * bytes, named by the directory they share (ambiguous: left alone).
 */
export function ownersByStack(stack: string, live: Iterable<CodeOwner>): CodeOwner[] {
  if (stack === '') return []
  const owners = [...live]
  // the first line is the message, which may quote anything
  for (const line of stack.split('\n').slice(1)) {
    if (!line.trimStart().startsWith('at ')) continue
    const hit = owners.filter((o) => line.includes(`${o.file}/`))
    if (hit.length === 0) {
      // a name in the cache directory: modules with the same bytes share it, so every module
      // whose directory it is (more than one module is ambiguous, and left alone)
      const byDir = owners.filter((o) => o.dir !== undefined && line.includes(`${o.dir}/`))
      if (byDir.length > 0) return byDir
      continue
    }
    // one bundle file per module; a longer file name that contains a shorter one is the match
    const file = hit.reduce((a, b) => (b.file.length > a.file.length ? b : a)).file
    return hit.filter((o) => o.file === file)
  }
  return []
}

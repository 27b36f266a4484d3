/**
 * A module-name pattern of `reload.modules` and `isolation.thread.modules`
 * (`billing core.*`): `*` is the only wildcard, and it matches whole names only.
 */
export function namePattern(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
  return new RegExp(`^${escaped}$`)
}

const compiled = new WeakMap<readonly string[], readonly RegExp[]>()

/**
 * Whether `name` matches one of `globs`. The options' lists are frozen, so each
 * list is compiled once, not at every reload that asks.
 */
export function matchesAnyName(globs: readonly string[], name: string): boolean {
  let patterns = compiled.get(globs)
  if (!patterns) {
    patterns = globs.map(namePattern)
    compiled.set(globs, patterns)
  }
  return patterns.some((p) => p.test(name))
}

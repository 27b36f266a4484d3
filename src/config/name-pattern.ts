/**
 * A module-name pattern of `reload.modules` and `isolation.thread.modules`
 * (`billing core.*`): `*` is the only wildcard, and it matches whole names only.
 */
export function namePattern(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
  return new RegExp(`^${escaped}$`)
}

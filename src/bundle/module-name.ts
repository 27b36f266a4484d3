import path from 'node:path'

/** What a module, a dependency or a bundle file name may be called. */
export const moduleNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** Bundle files are zip archives with one of these extensions. */
export const bundleExtensions = Object.freeze(['.zip', '.jar'])

// `billing-1.2.0.jar`, `billing-1.2.0-SNAPSHOT.jar`, `billing-2.zip` are all `billing`
const trailingVersion = /-\d+(\.\d+)*([-+][0-9A-Za-z.-]+)?$/

/**
 * The module name of a bundle: the file name without its extension and without
 * a trailing `-<version>`. `undefined` when nothing valid remains.
 */
export function moduleNameOf(file: string, isDirectory = false): string | undefined {
  let base = path.basename(file)
  const ext = path.extname(base).toLowerCase()
  if (!isDirectory && bundleExtensions.includes(ext)) base = base.slice(0, -ext.length)
  const name = base.replace(trailingVersion, '')
  return moduleNamePattern.test(name) ? name : undefined
}

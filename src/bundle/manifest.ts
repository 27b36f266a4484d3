import { parseProperties } from '../config/read-properties.js'
import { type NyalaError, nyalaError } from '../errors.js'
import { safeEntryPath } from './entry-path.js'
import { moduleNamePattern } from './module-name.js'

/** `module.properties`, validated. */
export interface Manifest {
  readonly version: string
  /** Entry of the main file inside the bundle. @default 'index.js' */
  readonly main: string
  readonly dependsOn: readonly string[]
  readonly optionalDependsOn: readonly string[]
  /** URL prefix, no trailing slash except for `/` itself. @default `/<name>` */
  readonly prefix: string
  /** `false`: never hot-reloaded. @default true */
  readonly reloadable: boolean
  /** Whether `reloadable` is written in the file: with `reload.all=false` an explicit `true` selects the module. */
  readonly reloadableDeclared: boolean
  /** `thread`: the module runs in a worker thread of its own (src/isolate/). @default 'none' */
  readonly isolation: 'none' | 'thread'
}

export const manifestKeys = Object.freeze([
  'version',
  'main',
  'depends-on',
  'optional-depends-on',
  'prefix',
  'reloadable',
  'isolation',
])

const versionPattern = /^[0-9A-Za-z][0-9A-Za-z.+_-]*$/
const prefixPattern = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/

/**
 * Parses and validates `module.properties`. Throws NYALA_ERR_MANIFEST_INVALID
 * naming the bundle, key and value; unknown keys are returned as warnings.
 */
export function parseManifest(
  bundle: string,
  moduleName: string,
  text: string,
): { manifest: Manifest; warnings: NyalaError[] } {
  const props = parseProperties(text)
  // a value of megabytes would be a log line of megabytes
  const invalid = (key: string, value: string, expected: string) =>
    nyalaError('NYALA_ERR_MANIFEST_INVALID', {
      bundle,
      key: key.length > 200 ? `${key.slice(0, 200)}…` : key,
      value: value.length > 200 ? `${value.slice(0, 200)}… (${value.length} characters)` : value,
      expected,
    })
  const warnings: NyalaError[] = []

  const version = props.get('version') ?? ''
  if (!versionPattern.test(version)) throw invalid('version', version, 'a version such as 1.2.0')

  const mainRaw = props.get('main') || 'index.js'
  const main = safeEntryPath(mainRaw)
  if (!main) throw invalid('main', mainRaw, 'a file path inside the bundle')

  const names = (key: string): string[] => {
    const raw = props.get(key) ?? ''
    const list = raw.split(/[\s,]+/).filter(Boolean)
    for (const name of list) {
      if (!moduleNamePattern.test(name)) throw invalid(key, raw, 'module names separated by commas')
      if (name === moduleName) throw invalid(key, raw, 'other modules than the module itself')
    }
    return [...new Set(list)]
  }
  const dependsOn = names('depends-on')
  const optionalDependsOn = names('optional-depends-on').filter((n) => !dependsOn.includes(n))

  const prefixRaw = props.get('prefix') || `/${moduleName}`
  if (!prefixPattern.test(prefixRaw) || prefixRaw.split('/').includes('..')) {
    throw invalid('prefix', prefixRaw, 'a URL path starting with /, such as /billing')
  }
  const prefix = prefixRaw.length > 1 ? prefixRaw.replace(/\/+$/, '') || '/' : prefixRaw

  const reloadableRaw = (props.get('reloadable') || 'true').toLowerCase()
  if (reloadableRaw !== 'true' && reloadableRaw !== 'false') {
    throw invalid('reloadable', reloadableRaw, 'true or false')
  }

  const isolation = (props.get('isolation') || 'none').toLowerCase()
  if (isolation !== 'none' && isolation !== 'thread') throw invalid('isolation', isolation, 'none or thread')

  for (const key of props.keys()) {
    if (!manifestKeys.includes(key)) {
      warnings.push(
        invalid(
          key,
          props.get(key) ?? '',
          `one of the known keys (${manifestKeys.join(', ')}); it is ignored`,
        ),
      )
    }
  }
  const manifest: Manifest = Object.freeze({
    version,
    main,
    dependsOn: Object.freeze(dependsOn),
    optionalDependsOn: Object.freeze(optionalDependsOn),
    prefix,
    reloadable: reloadableRaw === 'true',
    reloadableDeclared: props.has('reloadable'),
    isolation,
  })
  return { manifest, warnings }
}

import type { Bundle } from '../bundle/open-bundle.js'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { scriptOrKind, transformError, transformInputOf } from './compile-module.js'
import { parseJsonText } from './json-text.js'
import { moduleKindOf, scriptName } from './module-kind.js'
import { codeName } from './module-location.js'
import { resolveIndexOf } from './resolve.js'
import { type Transformed, transformKey, transformLater } from './transform.js'

/**
 * The bundle's own scripts and package.json files: what a syntax check looks
 * at. The bundle's `node_modules/` is left to load time: packages there often
 * carry files that are never required.
 */
export function ownScripts(bundle: Bundle): string[] {
  const scripts: string[] = []
  for (const entry of bundle.files.keys()) {
    if (entry.startsWith('node_modules/') || entry.includes('/node_modules/')) continue
    if (entry.endsWith('.json')) {
      if (entry === 'package.json' || entry.endsWith('/package.json')) scripts.push(entry)
    } else if (scriptName.test(entry)) scripts.push(entry)
  }
  return scripts
}

export interface SyntaxVerdict {
  /** The first error found, or `undefined` when every file compiled or transformed. */
  readonly error: NyalaError | undefined
  /** Transforms made for the check, for the loading thread's cache. */
  readonly transformed: Transformed[]
}

/**
 * The syntax check as the bundle reader's worker makes it: CommonJS is
 * compiled; ES modules and TypeScript are transformed (esbuild parses them
 * whole), except those whose transform the loading thread already holds
 * (`known`, by transform key: same source, same verdict), so a reload of
 * unchanged files transforms nothing again.
 */
export async function checkSyntaxOffThread(
  bundle: Bundle,
  known: ReadonlySet<string>,
): Promise<SyntaxVerdict> {
  const index = resolveIndexOf(bundle.files)
  const transformed: Transformed[] = []
  for (const entry of ownScripts(bundle)) {
    const source = index.readText(entry)
    try {
      if (moduleKindOf(index, entry).format === 'json') {
        parseJson(bundle.file, entry, source)
        continue
      }
      const script = scriptOrKind(bundle.file, index, entry, source, codeName(bundle, entry))
      if ('fn' in script) continue
      const input = transformInputOf(index, entry, source, script.kind)
      if (known.has(transformKey(input))) continue
      try {
        transformed.push(await transformLater(input))
      } catch (err) {
        throw transformError(bundle.file, entry, err)
      }
    } catch (err) {
      return { error: err as NyalaError, transformed }
    }
  }
  return { error: undefined, transformed }
}

export function parseJson(label: string, entry: string, source: string): unknown {
  try {
    return parseJsonText(source)
  } catch (err) {
    throw nyalaError('NYALA_ERR_MODULE_SYNTAX', { bundle: label, location: entry, reason: reasonOf(err) })
  }
}

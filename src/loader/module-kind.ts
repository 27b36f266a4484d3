import path from 'node:path'
import { packageScope, type ResolveIndex } from './resolve.js'

/**
 * How the loader runs one bundle entry, as Node decides it: `.mjs` / `.mts`
 * are ES modules, `.cjs` / `.cts` CommonJS, `.js` / `.ts` follow the nearest
 * package.json `type` (CommonJS without one; a `.js` file that only parses as
 * an ES module is then run as one, as Node's syntax detection does), `.json` is
 * data, `.node` a native addon. `.tsx` and `.jsx` (which Node does not run: they are
 * TypeScript's and bundlers') follow the package `type` as `.ts` does, their JSX
 * compiled as the tsconfig.json says (src/loader/transform.ts). `loader` is what
 * esbuild reads it as; `undefined` runs it as it is.
 */
export interface ModuleKind {
  readonly format: 'json' | 'addon' | 'cjs' | 'esm'
  readonly loader: TransformLoader | undefined
}

/** A script's name by its extension: JavaScript and TypeScript in their three flavours, JSX and TSX. */
export const scriptName = /\.(?:[cm]?[jt]s|[jt]sx)$/

/** The esbuild loaders the loader uses: TypeScript and JSX are compiled, plain JS only rewritten. */
export type TransformLoader = 'js' | 'ts' | 'tsx' | 'jsx'

const json: ModuleKind = { format: 'json', loader: undefined }
const addon: ModuleKind = { format: 'addon', loader: undefined }
const plainCjs: ModuleKind = { format: 'cjs', loader: undefined }
const esm: ModuleKind = { format: 'esm', loader: 'js' }
const tsEsm: ModuleKind = { format: 'esm', loader: 'ts' }
const tsCjs: ModuleKind = { format: 'cjs', loader: 'ts' }
const tsxEsm: ModuleKind = { format: 'esm', loader: 'tsx' }
const tsxCjs: ModuleKind = { format: 'cjs', loader: 'tsx' }
const jsxEsm: ModuleKind = { format: 'esm', loader: 'jsx' }
const jsxCjs: ModuleKind = { format: 'cjs', loader: 'jsx' }

/** `import(` in CommonJS: esbuild rewrites it, since compiled code has no dynamic import of its own. */
export const cjsWithImport: ModuleKind = { format: 'cjs', loader: 'js' }
export const detectedEsm = esm

export function moduleKindOf(index: ResolveIndex, entry: string): ModuleKind {
  const ext = path.posix.extname(entry)
  switch (ext) {
    case '.json':
      return json
    case '.node':
      return addon
    case '.mjs':
      return esm
    case '.cjs':
      return plainCjs
    case '.mts':
      return tsEsm
    case '.cts':
      return tsCjs
    case '.js':
      return scopeType(index, entry) === 'module' ? esm : plainCjs
    case '.ts':
      return scopeType(index, entry) === 'module' ? tsEsm : tsCjs
    case '.tsx':
      return scopeType(index, entry) === 'module' ? tsxEsm : tsxCjs
    case '.jsx':
      return scopeType(index, entry) === 'module' ? jsxEsm : jsxCjs
    default:
      // CommonJS runs a file of any other extension as JavaScript
      return plainCjs
  }
}

function scopeType(index: ResolveIndex, entry: string): unknown {
  const dir = path.posix.dirname(entry)
  try {
    return packageScope(index, dir === '.' ? '' : dir)?.pkg.type
  } catch {
    return undefined // a package.json that does not parse is reported where it is resolved
  }
}

/** Messages of V8's SyntaxError for ES module syntax in a script, on which Node retries a `.js` file as an ES module. */
const esmOnly = [
  'Cannot use import statement outside a module',
  "Unexpected token 'export'",
  "Cannot use 'import.meta' outside a module",
  // top-level await: Node retries as an ES module too (where the transform refuses it by name)
  'await is only valid in async functions and the top level bodies of modules',
]

export const isEsmSyntaxError = (message: string): boolean => esmOnly.some((m) => message.includes(m))

/** Cheap test for a CommonJS source that may call `import()`. */
export const mayImportDynamically = (source: string): boolean => /\bimport\s*\(/.test(source)

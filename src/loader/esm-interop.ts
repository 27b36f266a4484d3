import { types } from 'node:util'

const namespaces = new WeakMap<object, object>()

/**
 * What an `import` of a module gets, in the shape esbuild's CommonJS output
 * reads (its `__toESM` takes an object with `__esModule` as it is).
 *
 * An ES module run by the loader (or TypeScript written with import/export):
 * its exports, which are its namespace when they carry `__esModule`. Any other
 * module (CommonJS, TypeScript's `export =`, a built-in, a host package) gets
 * what Node's ES module loader gives: `default` is `module.exports` (even when it sets
 * `__esModule`), and the named exports are its own enumerable properties as
 * they are once it has run. A host ES module loaded with `require` is already
 * a namespace. Namespaces of modules that finished loading are kept, so two
 * imports of one module see the same object.
 */
export function namespaceOf(exports: unknown, esm: boolean, complete = true): unknown {
  if (exports === null || (typeof exports !== 'object' && typeof exports !== 'function')) {
    return { __esModule: true, default: exports }
  }
  if (esm && (exports as { __esModule?: unknown }).__esModule === true) return exports
  const known = namespaces.get(exports)
  if (known) return known
  let ns: Record<string, unknown>
  if (types.isModuleNamespaceObject(exports)) {
    if ('__esModule' in exports) return exports
    ns = { __esModule: true, ...exports }
  } else {
    ns = { __esModule: true }
    const source = exports as Record<string, unknown>
    for (const key of Object.keys(source)) {
      if (key !== 'default' && key !== '__esModule') ns[key] = source[key]
    }
    ns.default = exports
  }
  if (complete) namespaces.set(exports, ns)
  return ns
}

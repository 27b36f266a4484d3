import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { bundleExtensions } from './module-name.js'

/**
 * The bundles deployed in a modules directory: `*.zip`, `*.jar` and
 * directories. Hidden entries, `node_modules`, and the files reload leaves
 * beside bundles (`.tmp`, `.previous`, the touch file) are not bundles; nor is
 * `stagingDir` when it is kept inside the modules directory (the watcher
 * skips it alike: src/reload/sources.ts).
 */
export async function findBundles(modulesDir: string, stagingDir?: string): Promise<string[]> {
  const found: string[] = []
  for (const dirent of await readdir(modulesDir, { withFileTypes: true })) {
    const name = dirent.name
    if (name.startsWith('.') || name === 'node_modules') continue
    const file = path.join(modulesDir, name)
    if (dirent.isDirectory()) {
      if (stagingDir === undefined || path.resolve(file) !== path.resolve(stagingDir)) found.push(file)
    } else if (dirent.isFile() && bundleExtensions.includes(path.extname(name).toLowerCase()))
      found.push(file)
  }
  return found.sort()
}

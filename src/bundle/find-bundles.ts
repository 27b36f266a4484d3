import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { bundleExtensions } from './module-name.js'

/**
 * The bundles deployed in a modules directory: `*.zip`, `*.jar` and
 * directories. Hidden entries, `node_modules`, and the files reload leaves
 * beside bundles (`.tmp`, `.previous`, the touch file) are not bundles.
 */
export async function findBundles(modulesDir: string): Promise<string[]> {
  const found: string[] = []
  for (const dirent of await readdir(modulesDir, { withFileTypes: true })) {
    const name = dirent.name
    if (name.startsWith('.') || name === 'node_modules') continue
    if (dirent.isDirectory()) found.push(path.join(modulesDir, name))
    else if (dirent.isFile() && bundleExtensions.includes(path.extname(name).toLowerCase())) {
      found.push(path.join(modulesDir, name))
    }
  }
  return found.sort()
}

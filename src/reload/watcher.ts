import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { watch } from 'chokidar'
import type { HostOptions } from '../config/host-options.js'
import { type PathEvent, type Watching, watchFlat } from './flat-watcher.js'

/**
 * Watches what the monitoring type looks at and reports changed paths. With a
 * touch file, only the touch file is watched: nothing is looked at until it
 * changes. One directory level (`.tmp` files, the staging directory, the touch
 * file) is watched by `watchFlat`, whose cost per event does not grow with the
 * directory; exploded module directories (default type) and polling (network
 * file systems) use chokidar.
 */
export async function startWatcher(
  options: HostOptions,
  onPath: (event: PathEvent, file: string) => void,
  onError: (err: Error) => void = () => {},
): Promise<Watching> {
  const { autoReload, modulesDir } = options
  let paths: string[]
  let depth: number
  if (autoReload.useTouchFile) {
    paths = [autoReload.touchFile]
    depth = 0
  } else if (autoReload.monitoringType === 'stagingDirectory') {
    // a staging directory that does not exist yet is made, so a first copy into it is seen
    mkdirSync(autoReload.stagingDir, { recursive: true })
    paths = [autoReload.stagingDir]
    depth = 0
  } else {
    paths = [modulesDir]
    // exploded directories are watched inside (default type); .tmp files sit beside bundles
    depth = autoReload.monitoringType === 'default' ? 16 : 0
  }
  const includes = autoReload.extensionIncludes.map(normalizeExt)
  const excludes = autoReload.extensionExcludes.map(normalizeExt)
  const ignored = (file: string) => {
    const base = path.basename(file)
    // hidden files are the host's own partial writes (and editors' swap files)
    if (base.startsWith('.')) return true
    if (base.endsWith('.previous')) return true
    // inside an exploded directory, only the files whose extension counts
    const rel = path.relative(modulesDir, file)
    if (!autoReload.useTouchFile && rel.includes(path.sep) && !rel.startsWith('..')) {
      const ext = path.extname(base).toLowerCase()
      if (ext && excludes.includes(ext)) return true
      if (ext && includes.length > 0 && !includes.includes(ext)) return true
    }
    return false
  }
  if (!autoReload.polling && depth === 0 && paths.length === 1) {
    const target = paths[0]!
    // the touch file: its directory is watched, so replacing or creating the file is seen too
    const dir = autoReload.useTouchFile ? path.dirname(target) : target
    if (existsSync(dir)) {
      const accept = autoReload.useTouchFile
        ? (file: string) => file === target
        : (file: string) => !ignored(file)
      return watchFlat(dir, accept, onPath, onError)
    }
  }
  const watcher = watch(paths, {
    ignoreInitial: true,
    depth,
    usePolling: autoReload.polling,
    interval: autoReload.checkIntervalMs,
    binaryInterval: autoReload.checkIntervalMs,
    ignored,
  })
  for (const event of ['add', 'change', 'unlink', 'addDir', 'unlinkDir'] as const) {
    watcher.on(event, (file: string) =>
      onPath(event === 'addDir' ? 'add' : event === 'unlinkDir' ? 'unlink' : event, path.resolve(file)),
    )
  }
  await new Promise<void>((resolve, reject) => {
    watcher.once('ready', () => resolve())
    watcher.once('error', reject)
  })
  return watcher
}

const normalizeExt = (ext: string) => (ext.startsWith('.') ? ext : `.${ext}`).toLowerCase()

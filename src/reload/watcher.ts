import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { type FSWatcher, watch } from 'chokidar'
import type { HostOptions } from '../config/host-options.js'

/**
 * Watches what the monitoring type looks at (chokidar: OS events, or polling
 * for network file systems) and reports changed paths. With a touch file, only
 * the touch file is watched: nothing is looked at until it changes.
 */
export async function startWatcher(
  options: HostOptions,
  onPath: (event: 'add' | 'change' | 'unlink', file: string) => void,
): Promise<FSWatcher> {
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
  const watcher = watch(paths, {
    ignoreInitial: true,
    depth,
    usePolling: autoReload.polling,
    interval: autoReload.checkIntervalMs,
    binaryInterval: autoReload.checkIntervalMs,
    ignored: (file: string) => {
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
    },
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

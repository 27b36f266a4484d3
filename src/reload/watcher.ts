import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { type FSWatcher, watch } from 'chokidar'
import type { HostOptions } from '../config/host-options.js'

/**
 * Watches the deploy paths (chokidar: OS events, or polling for network file
 * systems) and reports changed paths. The modules directory is always watched
 * (one level deep, or inside exploded directories when the `default` type is
 * active), so a `.tmp` dropped while `tmpfile` is off is still seen and
 * warned about; so is an existing staging directory, and the touch file.
 * With `use.touch.file=true` only the touch file is watched: nothing is
 * looked at until it changes.
 */
export async function startWatcher(
  options: HostOptions,
  onPath: (event: 'add' | 'change' | 'unlink', file: string) => void,
): Promise<FSWatcher> {
  const { autoReload, modulesDir } = options
  const types = autoReload.monitoringTypes
  const paths: string[] = []
  // the touch file inside the modules directory is seen through it
  if (autoReload.useTouchFile || path.dirname(autoReload.touchFile) !== modulesDir)
    paths.push(autoReload.touchFile)
  let depth = 0
  // a staging directory that does not exist yet is made, so a first copy into it is seen
  if (types.includes('stagingDirectory')) mkdirSync(autoReload.stagingDir, { recursive: true })
  if (!autoReload.useTouchFile) {
    paths.push(modulesDir)
    // exploded directories are watched inside (default type); .tmp files sit beside bundles
    if (types.includes('default')) depth = 16
    if (existsSync(autoReload.stagingDir)) paths.push(autoReload.stagingDir)
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
      if (base.endsWith('.previous') || base.endsWith('.superseded')) return true
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

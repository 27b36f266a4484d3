import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { watch } from 'chokidar'
import type { HostOptions } from '../config/host-options.js'
import { type OnPath, type Watching, watchFlat } from './flat-watcher.js'

/**
 * Watches the deploy paths and reports changed paths. The modules directory is
 * always watched (one level deep, or inside exploded directories when the
 * `default` type is active), so a `.tmp` dropped while `tmpfile` is off is
 * still seen and warned about; so is an existing staging directory, and the
 * touch file. With `use.touch.file=true` only the touch file is watched:
 * nothing is looked at until it changes.
 *
 * One directory level is watched by `watchFlat` (`fs.watch`: an event costs
 * one `stat` of the file it names, whatever else the directory holds). chokidar
 * watches the `default` type (it looks inside exploded directories) and
 * everything when polling (network file systems); on every event it lists the
 * directory and `lstat`s each entry, which with 1000 bundles took 40 ms per
 * event and held the reload's own file operations up behind it (bench/scale.js).
 */
export async function startWatcher(
  options: HostOptions,
  onPath: OnPath,
  onError: (err: Error) => void = () => {},
): Promise<Watching> {
  const { autoReload, modulesDir } = options
  const types = autoReload.monitoringTypes
  const touchFile = autoReload.touchFile
  const touchDir = path.dirname(touchFile)
  // a staging directory that does not exist yet is made, so a first copy into it is seen
  if (types.includes('stagingDirectory')) mkdirSync(autoReload.stagingDir, { recursive: true })
  const ignored = ignoredBy(options)
  const isTouch = (file: string) => file === touchFile

  if (autoReload.polling) {
    const paths = autoReload.useTouchFile ? [touchFile] : [modulesDir]
    if (!autoReload.useTouchFile && existsSync(autoReload.stagingDir)) paths.push(autoReload.stagingDir)
    if (!autoReload.useTouchFile && touchDir !== modulesDir) paths.push(touchFile)
    const depth = !autoReload.useTouchFile && types.includes('default') ? 16 : 0
    return chokidarWatch(paths, depth, options, ignored, onPath, onError)
  }
  if (autoReload.useTouchFile) {
    return existsSync(touchDir) ? watchFlat(touchDir, isTouch, onPath, onError) : { close: async () => {} }
  }

  const watchings: Watching[] = []
  if (types.includes('default')) {
    watchings.push(await chokidarWatch([modulesDir], 16, options, ignored, onPath, onError))
  } else {
    watchings.push(watchFlat(modulesDir, (file) => !ignored(file), onPath, onError))
  }
  if (existsSync(autoReload.stagingDir) && autoReload.stagingDir !== modulesDir) {
    watchings.push(watchFlat(autoReload.stagingDir, (file) => !ignored(file), onPath, onError))
  }
  // the touch file beside the modules is seen through the modules directory's watch
  if (touchDir !== modulesDir && touchDir !== autoReload.stagingDir && existsSync(touchDir)) {
    watchings.push(watchFlat(touchDir, isTouch, onPath, onError))
  }
  return {
    async close() {
      await Promise.all(watchings.map((w) => w.close()))
    },
  }
}

/** What is never looked at: hidden files, what reload leaves beside bundles, excluded extensions. */
function ignoredBy(options: HostOptions): (file: string) => boolean {
  const { autoReload, modulesDir } = options
  const includes = autoReload.extensionIncludes.map(normalizeExt)
  const excludes = autoReload.extensionExcludes.map(normalizeExt)
  return (file) => {
    const base = path.basename(file)
    // hidden files are the host's own partial writes (and editors' swap files)
    if (base.startsWith('.')) return true
    if (base.endsWith('.previous') || base.endsWith('.superseded')) return true
    // inside an exploded directory, only the files whose extension counts
    const rel = path.relative(modulesDir, file)
    if (rel.includes(path.sep) && !rel.startsWith('..')) {
      const ext = path.extname(base).toLowerCase()
      if (ext && excludes.includes(ext)) return true
      if (ext && includes.length > 0 && !includes.includes(ext)) return true
    }
    return false
  }
}

async function chokidarWatch(
  paths: string[],
  depth: number,
  options: HostOptions,
  ignored: (file: string) => boolean,
  onPath: OnPath,
  onError: (err: Error) => void,
): Promise<Watching> {
  const { autoReload } = options
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
  watcher.on('error', (err) => onError(err as Error))
  return { close: () => watcher.close() }
}

const normalizeExt = (ext: string) => (ext.startsWith('.') ? ext : `.${ext}`).toLowerCase()

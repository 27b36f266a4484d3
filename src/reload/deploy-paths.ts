import path from 'node:path'
import type { HostOptions, MonitoringType } from '../config/host-options.js'

export interface DeployPath {
  /** `default`, `tmpfile`, `stagingDirectory`, or `touch` for the touch file. */
  readonly type: MonitoringType | 'touch'
  /** Where to put files (a directory, or the touch file). */
  readonly path: string
  /** What a user does there, in a few words. */
  readonly how: string
}

/** A path as a user reads it: relative to the root when it is inside, else absolute. */
function shown(root: string, p: string): string {
  const rel = path.relative(root, p)
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p
}

/**
 * The deploy paths a host serves, for its start-up line: one line that names
 * each, so a user knows where to put a bundle without reading the
 * configuration (and sees at once when hot reload is off).
 */
export function describeDeployPaths(options: HostOptions): {
  list: readonly DeployPath[]
  summary: string
} {
  const { autoReload, modulesDir, root } = options
  const touch = shown(root, autoReload.touchFile)
  if (!autoReload.enabled) {
    return {
      list: [],
      summary:
        'hot reload is off (auto.reload.modules=false): deploy with "nyala reload <module>", ' +
        'or set auto.reload.modules=true (or start with --watch)',
    }
  }
  const modules = shown(root, modulesDir)
  const list: DeployPath[] = []
  if (!autoReload.useTouchFile) {
    for (const type of autoReload.monitoringTypes) {
      if (type === 'stagingDirectory')
        list.push({
          type,
          path: autoReload.stagingDir,
          how: `copy a bundle into ${shown(root, autoReload.stagingDir)}/`,
        })
      else if (type === 'tmpfile')
        list.push({ type, path: modulesDir, how: `drop <bundle>.tmp beside the bundle in ${modules}/` })
      else list.push({ type, path: modulesDir, how: `replace a bundle in ${modules}/` })
    }
    list.push({ type: 'touch', path: autoReload.touchFile, how: `touch ${touch} to rescan` })
    return {
      list,
      summary: `hot reload on, deploy paths: ${list.map((p) => `${p.how} (${p.type})`).join('; ')}`,
    }
  }
  const kinds = autoReload.monitoringTypes.join(', ')
  list.push({
    type: 'touch',
    path: autoReload.touchFile,
    how: `touch ${touch} to deploy what waits (${kinds})`,
  })
  return {
    list,
    summary: `hot reload on, the touch file is the only trigger (use.touch.file=true): touch ${touch} to deploy what waits on ${kinds}`,
  }
}

import { type FSWatcher, readdirSync, watch } from 'node:fs'
import { stat } from 'node:fs/promises'
import path from 'node:path'
import { stampOf } from './file-stamp.js'

export type PathEvent = 'add' | 'change' | 'unlink'

/**
 * Told of each changed path; `stamp` (file-stamp.ts) is what the watcher saw
 * of a file that is there, when it looked (the reloader then need not look again).
 */
export type OnPath = (event: PathEvent, file: string, stamp?: string) => void

/** A running watch; `close` stops it. */
export interface Watching {
  close(): Promise<void>
}

/**
 * Watches the entries of one directory, not below it, with `fs.watch`
 * (inotify on Linux). Each event names the entry it is about, so an event
 * costs one `stat` of that entry, whatever else the directory holds. chokidar
 * instead lists the directory and `lstat`s every entry on each event, to find
 * what changed: with 1000 bundles beside a `.tmp`, 40 ms from the rename to
 * its event, and the reload's own reads and renames wait behind those `lstat`s
 * in libuv's thread pool (bench/scale.js).
 *
 * `accept(file)` filters before anything is looked at. Events of one entry are
 * looked at one at a time, in order; one arriving meanwhile makes the entry be
 * looked at once more.
 */
export function watchFlat(
  dir: string,
  accept: (file: string) => boolean,
  onPath: OnPath,
  onError: (err: Error) => void,
): Watching {
  // what exists now, so a later event can tell an added entry from a changed one
  const known = new Set(readdirSync(dir).filter((name) => accept(path.join(dir, name))))
  const busy = new Map<string, { again: boolean }>()
  let closed = false

  const look = async (name: string) => {
    const file = path.join(dir, name)
    const state = busy.get(name)
    if (state) {
      state.again = true
      return
    }
    const mine = { again: true }
    busy.set(name, mine)
    try {
      while (mine.again && !closed) {
        mine.again = false
        let stamp: string | undefined
        try {
          stamp = stampOf(await stat(file, { bigint: true }))
        } catch {
          stamp = undefined
        }
        if (closed) return
        if (stamp !== undefined) {
          onPath(known.has(name) ? 'change' : 'add', file, stamp)
          known.add(name)
        } else if (known.delete(name)) {
          onPath('unlink', file)
        }
      }
    } finally {
      busy.delete(name)
    }
  }

  // no name in the event (not seen on Linux or macOS): look at everything listed or known
  const relist = () => {
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch (err) {
      onError(err as Error)
      return
    }
    for (const name of new Set([...known, ...names])) {
      if (accept(path.join(dir, name))) void look(name)
    }
  }

  const watcher: FSWatcher = watch(dir, { persistent: true }, (_type, name) => {
    if (closed) return
    if (name === null) {
      relist()
      return
    }
    if (accept(path.join(dir, name))) void look(name)
  })
  watcher.on('error', (err) => {
    if (!closed) onError(err)
  })
  return {
    async close() {
      closed = true
      watcher.close()
    },
  }
}

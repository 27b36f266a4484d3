import { type FSWatcher, readdirSync, watch } from 'node:fs'
import { stat } from 'node:fs/promises'
import path from 'node:path'

export type PathEvent = 'add' | 'change' | 'unlink'

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
  onPath: (event: PathEvent, file: string) => void,
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
        let exists: boolean
        try {
          await stat(file)
          exists = true
        } catch {
          exists = false
        }
        if (closed) return
        if (exists) {
          onPath(known.has(name) ? 'change' : 'add', file)
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

import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { isAlive } from '../process-alive.js'

/** How long a shrunk lease waits for a write that covers it (`writeSoon`). */
const writeSoonMs = 1000

/**
 * The cache directories each process uses, one file per process under
 * `<cache>/.leases/<pid>` listing their names. A cache directory is shared by
 * every process given the same `cache.directory`: during a process upgrade the
 * old and the new instance serve the same bundles from the same directories,
 * and one must not remove what the other still uses. A lease of a process
 * that is gone (killed, crashed) counts for nothing.
 */
export class CacheLeases {
  readonly #dir: string
  readonly #file: string
  #writing: Promise<void> = Promise.resolve()
  /** The `.leases` directory was there at the last write: the next write does not make it first. */
  #dirMade = false
  /** A write asked for by `writeSoon`, not made yet. */
  #soon: NodeJS.Timeout | undefined

  /**
   * `owner` names this lease file: the process id, or `<pid>-<thread id>` for a module thread
   * (src/isolate/), which keeps a file cache of its own beside the process's.
   */
  constructor(cacheDir: string, owner = String(process.pid)) {
    this.#dir = path.join(cacheDir, '.leases')
    this.#file = path.join(this.#dir, owner)
  }

  /**
   * Writes this process's lease (atomically: a reader never sees half a list); writes run one
   * after another. It covers a `writeSoon` still waiting.
   */
  write(names: Iterable<string>): Promise<void> {
    clearTimeout(this.#soon)
    this.#soon = undefined
    const text = [...names].sort().join('\n')
    const next = this.#writing.then(async () => {
      const tmp = `${this.#file}.tmp`
      // the directory is made once, and again only if it was removed (three file-system calls a
      // write instead of four, on a reload's path)
      if (!this.#dirMade) await mkdir(this.#dir, { recursive: true })
      try {
        await writeFile(tmp, text)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !this.#dirMade) throw err
        await mkdir(this.#dir, { recursive: true })
        await writeFile(tmp, text)
      }
      this.#dirMade = true
      await rename(tmp, this.#file)
    })
    this.#writing = next.catch(() => {})
    return next
  }

  /**
   * Writes the lease a little later (`names()` read then), unless a `write` comes first and
   * covers it. For a lease that only shrinks: until it is written it names a directory this
   * process no longer uses, which keeps other processes from removing that directory, and
   * nothing else. A reload releases the old content's directory and, usually soon after,
   * acquires the next one's: one write for both instead of one each, off the reload's path.
   */
  writeSoon(names: () => Iterable<string>, ms = writeSoonMs): void {
    if (this.#soon) return
    this.#soon = setTimeout(() => {
      this.#soon = undefined
      this.write(names()).catch(() => {})
    }, ms)
    this.#soon.unref()
  }

  /** Removes this process's lease (at exit: what it used is then for the next start's sweep to judge). */
  async drop(): Promise<void> {
    clearTimeout(this.#soon)
    this.#soon = undefined
    await this.#writing
    await rm(this.#file, { force: true })
  }

  /**
   * The names leased by other live processes. Leases of dead processes are
   * removed on the way.
   */
  async others(): Promise<Set<string>> {
    const names = new Set<string>()
    let files: string[]
    try {
      files = await readdir(this.#dir)
    } catch {
      return names
    }
    const own = path.basename(this.#file)
    for (const file of files) {
      // `<pid>` or `<pid>-<thread id>`: a module thread's lease counts as another's, even in this process
      const owner = file.replace(/\.tmp$/, '')
      const pid = Number(owner.replace(/-\d+$/, ''))
      if (!Number.isInteger(pid) || owner === own) continue
      if (!isAlive(pid)) {
        await rm(path.join(this.#dir, file), { force: true })
        continue
      }
      if (file.endsWith('.tmp')) continue
      const text = await readFile(path.join(this.#dir, file), 'utf8').catch(() => '')
      for (const name of text.split('\n')) if (name) names.add(name)
    }
    return names
  }
}

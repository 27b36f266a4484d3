import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { isAlive } from '../process-alive.js'

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

  constructor(cacheDir: string) {
    this.#dir = path.join(cacheDir, '.leases')
    this.#file = path.join(this.#dir, String(process.pid))
  }

  /** Writes this process's lease (atomically: a reader never sees half a list); writes run one after another. */
  write(names: Iterable<string>): Promise<void> {
    const text = [...names].sort().join('\n')
    const next = this.#writing.then(async () => {
      await mkdir(this.#dir, { recursive: true })
      const tmp = `${this.#file}.tmp`
      await writeFile(tmp, text)
      await rename(tmp, this.#file)
    })
    this.#writing = next.catch(() => {})
    return next
  }

  /** Removes this process's lease (at exit: what it used is then for the next start's sweep to judge). */
  async drop(): Promise<void> {
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
    for (const file of files) {
      const pid = Number(file.replace(/\.tmp$/, ''))
      if (!Number.isInteger(pid) || pid === process.pid) continue
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

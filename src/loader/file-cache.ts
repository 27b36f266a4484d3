import { mkdir, readdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { isDirectory } from '../bundle/is-directory.js'
import type { Bundle } from '../bundle/open-bundle.js'
import { nyalaError, reasonOf } from '../errors.js'
import { isAlive } from '../process-alive.js'
import { CacheLeases } from './cache-leases.js'
import { placeBundle, unplaceBundle } from './module-location.js'
import { removeTree, removeWrittenTree, type TreeSource, writeReadOnlyTree } from './write-tree.js'

/** A generation's hold on its bundle's cache directory; `release` when it stops (idempotent). */
export interface FileLease {
  readonly dir: string
  release(): void
}

/** What the cache logs: a directory written or removed (debug), a removal that failed (warn). */
export interface CacheLog {
  debug(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

const cacheName = /^[0-9a-f]{64}$/
const scratchName = /^\.(?:tmp|trash)-[0-9a-f]{64}-(\d+)-\d+$/

/**
 * The content-addressed cache of bundle files: `<dir>/<bundle sha256>/`, one
 * read-only copy (files 0444, directories 0555) of every file of a bundle,
 * for code that reads files beside itself and for native addons; JavaScript
 * still runs from memory.
 *
 * Written when a generation starts (`acquire`), not when a bundle is read:
 * what a file system read of module code may touch is unknown, so the whole
 * bundle is written before its code runs; and a candidate refused while it is
 * validated (syntax, an addon for another machine) never costs a write. A
 * directory is written to a temporary name and renamed into place, so a crash
 * never leaves a half-written one under a content name. Generations with the
 * same content share the directory: a reload of unchanged content writes
 * nothing. A directory is removed when the last generation of this process
 * using it stops, unless another live process (an upgrade's other instance)
 * leases it; at exit directories are left for the next start, whose `sweep`
 * removes those it does not use.
 */
export class FileCache {
  readonly dir: string
  readonly #log: CacheLog | undefined
  readonly #leases: CacheLeases
  /** Generations of this process using each directory. */
  readonly #refs = new Map<string, number>()
  /** The names in this process's lease file. */
  readonly #leased = new Set<string>()
  /** One operation at a time per directory: a removal never races a write of the same content. */
  readonly #queues = new Map<string, Promise<unknown>>()
  /** The last content of each module given out: what its next content links unchanged files to. */
  readonly #lastOf = new Map<string, WeakRef<Bundle>>()
  /** The files of each directory this process acquired: what removing it unlinks, without listing it. */
  readonly #entries = new Map<string, readonly string[]>()
  #scratch = 0
  #keep = false
  /** The cache's package.json was written (or found) by this process. */
  #typed = false

  /** `leaseOwner`: see CacheLeases (a module thread's cache names its own lease file). */
  constructor(dir: string, log?: CacheLog, leaseOwner?: string) {
    this.dir = dir
    this.#log = log
    this.#leases = new CacheLeases(dir, leaseOwner)
  }

  /** The directory of `bundle`'s files (by its content): where `acquire` places them. */
  dirOf(bundle: Bundle): string {
    return path.join(this.dir, bundle.hash)
  }

  /** Makes `bundle`'s files available in its directory (writing them if no one has) for one generation. */
  async acquire(bundle: Bundle): Promise<FileLease> {
    const name = bundle.hash
    const target = this.dirOf(bundle)
    // known now: what compiles before the files are written is compiled under their names there
    const placedHere = placeBundle(bundle, target)
    this.#refs.set(name, (this.#refs.get(name) ?? 0) + 1)
    let released = false
    const release = () => {
      if (released) return
      released = true
      this.#release(name)
    }
    try {
      await this.#serial(name, async () => {
        // on disk before the directory is looked at, so another process's removal sees it
        if (!this.#leased.has(name)) {
          this.#leased.add(name)
          await this.#leases.write(this.#leased)
        }
        if (!(await isDirectory(target))) await this.#place(bundle, target)
      })
    } catch (err) {
      release()
      // a generation of the same bundle that placed it before runs from those files still
      if (placedHere) unplaceBundle(bundle, target)
      throw nyalaError(
        'NYALA_ERR_CACHE_WRITE',
        { bundle: bundle.file, dir: target, reason: reasonOf(err) },
        err,
      )
    }
    this.#lastOf.set(bundle.name, new WeakRef(bundle))
    if (!this.#entries.has(name)) this.#entries.set(name, [...bundle.files.keys()])
    return { dir: target, release }
  }

  /**
   * Leases the directories of `bundles` in one write of the lease file, ahead
   * of their generations: start-up acquires hundreds of bundles one after
   * another, each of which would otherwise write the lease file once.
   * `sweep` drops what was reserved and never acquired.
   */
  async reserve(bundles: Iterable<Bundle>): Promise<void> {
    const added = [...bundles].map((b) => b.hash).filter((h) => !this.#leased.has(h))
    if (added.length === 0) return
    for (const h of added) this.#leased.add(h)
    try {
      await this.#leases.write(this.#leased)
    } catch (err) {
      // each acquire then writes (and reports) on its own
      for (const h of added) if (!this.#refs.has(h)) this.#leased.delete(h)
      throw err
    }
  }

  /**
   * Removes directories no live process leases and no generation of this one
   * uses, and scratch directories of processes that are gone: what a crash, a
   * kill or an earlier run left. Run after start-up has acquired what it uses.
   */
  async sweep(): Promise<number> {
    let dropped = false
    for (const name of this.#leased) {
      if (this.#refs.has(name)) continue
      this.#leased.delete(name)
      dropped = true
    }
    if (dropped) await this.#leases.write(this.#leased)
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch {
      return 0
    }
    let removed = 0
    for (const name of names) {
      const scratch = scratchName.exec(name)
      if (scratch) {
        if (!isAlive(Number(scratch[1]))) await removeTree(path.join(this.dir, name))
        continue
      }
      if (!cacheName.test(name) || this.#refs.has(name)) continue
      if (await this.#serial(name, () => this.#remove(name))) removed++
    }
    return removed
  }

  /**
   * From now on a directory whose last generation stops is kept (the process
   * is shutting down: the next start may use it again); `close` then drops
   * this process's lease.
   */
  keepOnRelease(): void {
    this.#keep = true
  }

  async close(): Promise<void> {
    this.#keep = true
    await this.#leases.drop().catch(() => {})
  }

  #release(name: string): void {
    const count = (this.#refs.get(name) ?? 1) - 1
    if (count > 0) {
      this.#refs.set(name, count)
      return
    }
    this.#refs.delete(name)
    if (this.#keep) return
    void this.#serial(name, async () => {
      if (this.#refs.has(name)) return false // acquired again meanwhile
      this.#leased.delete(name)
      // the lease written without it later (or by the next acquire, the next reload's, which
      // writes the whole set anyway): until then it only keeps other processes from removing a
      // directory this one is removing itself
      this.#leases.writeSoon(() => this.#leased)
      return this.#remove(name)
    }).catch((err: unknown) =>
      this.#log?.warn(
        { dir: path.join(this.dir, name), reason: reasonOf(err) },
        'cannot remove an unused cache directory (the next start removes it)',
      ),
    )
  }

  /** Removes one directory unless someone uses it; true when removed. */
  async #remove(name: string): Promise<boolean> {
    if (this.#refs.has(name) || (await this.#leases.others()).has(name)) return false
    const target = path.join(this.dir, name)
    const trash = path.join(this.dir, `.trash-${name}-${process.pid}-${++this.#scratch}`)
    // a generation of this process may have asked for it while the leases were read
    if (this.#refs.has(name)) return false
    try {
      await rename(target, trash)
    } catch {
      return false // gone already
    }
    // another process may have leased it and looked at it between our check and the rename
    if ((await this.#leases.others()).has(name)) {
      const back = await rename(trash, target).then(
        () => true,
        () => false, // it wrote its own copy meanwhile
      )
      if (back) return false
    }
    const entries = this.#entries.get(name)
    this.#entries.delete(name)
    await (entries ? removeWrittenTree(trash, entries) : removeTree(trash))
    this.#log?.debug({ dir: target }, 'cache directory removed: no generation uses it')
    return true
  }

  async #place(bundle: Bundle, target: string): Promise<void> {
    const t0 = performance.now()
    const tmp = path.join(this.dir, `.tmp-${bundle.hash}-${process.pid}-${++this.#scratch}`)
    const made = await mkdir(this.dir, { recursive: true })
    // Node's own loader (a Worker, a child process) must read a bundle's `.js` files as the
    // loader does, CommonJS unless the bundle's package.json says otherwise, not by the
    // `type` of a package.json above the cache (the host's project may be an ES module one).
    // Written once per process, and again whenever the cache directory had to be made anew.
    if (made !== undefined || !this.#typed) {
      await writeFile(path.join(this.dir, 'package.json'), '{ "type": "commonjs" }\n', { flag: 'wx' }).catch(
        () => {},
      )
      this.#typed = true
    }
    try {
      await writeReadOnlyTree(tmp, bundle.files, this.#reusable(bundle))
      await rename(tmp, target)
    } catch (err) {
      await removeTree(tmp).catch(() => {})
      // another process placed the same content first: a rename onto a full directory fails
      if (await isDirectory(target)) return
      throw err
    }
    this.#log?.debug(
      { bundle: bundle.file, dir: target, files: bundle.files.size, ms: Math.round(performance.now() - t0) },
      'bundle files written to the cache',
    )
  }

  /** The previous content of the same module, while its directory is still used (then it is on disk). */
  #reusable(bundle: Bundle): TreeSource | undefined {
    const last = this.#lastOf.get(bundle.name)?.deref()
    if (!last || last.hash === bundle.hash || !this.#refs.has(last.hash)) return undefined
    return { dir: path.join(this.dir, last.hash), files: last.files }
  }

  #serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(name) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const settled = run.catch(() => {})
    this.#queues.set(name, settled)
    void settled.then(() => {
      if (this.#queues.get(name) === settled) this.#queues.delete(name)
    })
    return run
  }
}

import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import type { NyalaError } from '../errors.js'
import { nyalaError } from '../errors.js'
import type { NyalaHost } from '../host.js'
import type { Change, ReloadResult } from './change.js'
import type { Watching } from './flat-watcher.js'
import { ModuleLocks } from './module-locks.js'
import { gone, readCandidate } from './read-candidate.js'
import { ReloadEvents } from './reload-events.js'
import { ReloadSelection } from './selection.js'
import { type Candidate, candidateOf, removedModules, scanCandidates } from './sources.js'
import { ReloadTransactions } from './transaction.js'
import { startWatcher } from './watcher.js'

const touchQuietMs = 30
const verifyDelaysMs = [100, 1000]

/** What identifies a file's content without reading it: a rename or rewrite changes it. */
async function signatureOf(file: string): Promise<string> {
  try {
    const st = await stat(file, { bigint: true })
    return `${st.ino}:${st.size}:${st.ctimeNs}:${st.mtimeNs}`
  } catch {
    return 'gone'
  }
}

/**
 * Turns triggers (a watched file, the touch file, the admin API, SIGHUP) into
 * reload transactions. Each source path is read by one check at a time; a
 * change that arrives while its check runs makes it run once more, so a burst
 * of writes costs one reload and the last content always wins.
 */
export class Reloader {
  readonly events = new ReloadEvents()
  readonly locks = new ModuleLocks()
  readonly selection: ReloadSelection
  readonly transactions: ReloadTransactions
  #watcher: Watching | undefined
  readonly #checks = new Map<string, { again: boolean; done: Promise<void> }>()
  readonly #running = new Set<Promise<unknown>>()
  #closed = false
  /** Paths reported while the host was still loading: looked at once it has loaded. */
  #held: [string, string][] | undefined = []
  #touchTimer: NodeJS.Timeout | undefined
  readonly #verifiers = new Set<NodeJS.Timeout>()

  constructor(private readonly host: NyalaHost) {
    this.selection = new ReloadSelection(host.options.reload)
    this.transactions = new ReloadTransactions(host, this.locks, this.events)
  }

  get #debug(): boolean {
    return this.host.options.reload.debug
  }

  #say(fields: Record<string, unknown>, msg: string): void {
    if (this.#debug) this.host.log.info({ reloadDebug: true, ...fields }, msg)
  }

  /**
   * Acts on what was reported while the modules loaded. The watcher starts
   * before the first bundle is read, so a bundle replaced during start-up is
   * not missed; its check compares content with what was loaded.
   */
  resume(): void {
    const held = this.#held ?? []
    this.#held = undefined
    for (const [event, file] of held) this.#onPath(event, file)
  }

  /** Starts watching when `auto.reload.modules=true`; resolves once the watcher is ready. */
  async start(): Promise<void> {
    const { autoReload } = this.host.options
    if (!autoReload.enabled) return
    this.#watcher = await startWatcher(
      this.host.options,
      (event, file) => this.#onPath(event, file),
      (err) => this.host.log.warn({ err: err.message }, `watching for reloads failed: ${err.message}`),
    )
    this.host.log.info(
      {
        monitoringType: autoReload.monitoringType,
        touchFile: autoReload.useTouchFile ? autoReload.touchFile : undefined,
        polling: autoReload.polling,
        mode: autoReload.mode,
      },
      autoReload.useTouchFile
        ? `watching the touch file ${autoReload.touchFile} (monitoring type ${autoReload.monitoringType})`
        : `watching for changed bundles (monitoring type ${autoReload.monitoringType})`,
    )
  }

  /** Stops watching and waits for running reloads and the drains they started. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#touchTimer)
    for (const timer of this.#verifiers) clearTimeout(timer)
    await this.#watcher?.close()
    this.#watcher = undefined
    await Promise.allSettled([...this.#running])
    await Promise.allSettled([...this.transactions.pending])
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#running.add(p)
    void p.finally(() => this.#running.delete(p)).catch(() => {})
    return p
  }

  /**
   * `echo billing > touch.txt` truncates, then writes: two events, and the first
   * would read an empty line (everything). Act on the touch once it has been
   * quiet for a moment.
   */
  #touchSoon(): void {
    clearTimeout(this.#touchTimer)
    this.#touchTimer = setTimeout(() => {
      if (!this.#closed) void this.#track(this.touched())
    }, touchQuietMs)
  }

  #onPath(event: string, file: string): void {
    if (this.#closed) return
    if (this.#held) {
      this.#held.push([event, file])
      return
    }
    const { autoReload } = this.host.options
    if (autoReload.useTouchFile) {
      if (file === autoReload.touchFile && event !== 'unlink') this.#touchSoon()
      return
    }
    const candidate = candidateOf(file, this.host.options, this.host.modules)
    this.#say({ event, file, candidate: candidate?.name ?? null }, `check: ${event} ${file}`)
    if (candidate) void this.#track(this.#check(candidate, 'watch'))
  }

  /** One check per source at a time; a change during a check runs it once more. */
  #check(candidate: Candidate, trigger: string): Promise<void> {
    const running = this.#checks.get(candidate.source)
    if (running) {
      running.again = true
      return running.done
    }
    const state = { again: false, done: Promise.resolve() }
    const watched = trigger === 'watch' && !candidate.directory
    state.done = (async () => {
      let seen = ''
      try {
        do {
          state.again = false
          if (watched) seen = await signatureOf(candidate.source)
          const result = await this.#checkOnce(candidate, trigger)
          if (result?.again?.length) state.again = true
        } while (state.again && !this.#closed)
      } finally {
        this.#checks.delete(candidate.source)
      }
      if (watched) this.#verifyLater(candidate, seen)
    })()
    this.#checks.set(candidate.source, state)
    return state.done
  }

  async #checkOnce(candidate: Candidate, trigger: string): Promise<ReloadResult | undefined> {
    const t0 = performance.now()
    const change = await this.#read(candidate, trigger)
    if (!change) return undefined
    if ('code' in change) return this.transactions.refuse(trigger, candidate.name, change, t0)
    if (!this.#selected(change)) return undefined
    return this.transactions.run([change], trigger, t0)
  }

  /**
   * A file replaced by a rename just after an earlier rename can go unreported:
   * chokidar re-attaches its watch to the new inode, and an event in between is
   * lost (seen in bench/peers.js: 27 of 57 back-to-back renames). So after a
   * watched check, the file's identity (inode, size, change time) is looked at
   * again a little later; if it moved on, it is checked once more.
   */
  #verifyLater(candidate: Candidate, seen: string): void {
    for (const ms of verifyDelaysMs) {
      const timer = setTimeout(async () => {
        this.#verifiers.delete(timer)
        if (this.#closed || this.#checks.has(candidate.source)) return
        const now = await signatureOf(candidate.source)
        // a `.tmp` or staged file gone is one the reload moved into place: nothing to look at
        if (now === 'gone' && candidate.source !== candidate.target) return
        if (now !== seen && !this.#closed && !this.#checks.has(candidate.source)) {
          this.#say(
            { module: candidate.name, file: candidate.source },
            'changed without an event: checking again',
          )
          void this.#track(this.#check(candidate, 'watch'))
        }
      }, ms)
      timer.unref()
      this.#verifiers.add(timer)
    }
  }

  /** Reads a candidate; a vanished bundle in `modules/` becomes a removal. */
  async #read(candidate: Candidate, trigger: string): Promise<Change | NyalaError | undefined> {
    const record = this.host.modules.get(candidate.name)
    // a second bundle of a deployed module beside the first (billing-2.0.zip next to billing.zip)
    if (
      record &&
      candidate.source === candidate.target &&
      record.file !== candidate.source &&
      existsSync(record.file) &&
      existsSync(candidate.source)
    ) {
      return nyalaError('NYALA_ERR_BUNDLE_DUPLICATE', {
        module: candidate.name,
        bundle: record.file,
        other: candidate.source,
      })
    }
    const result = await readCandidate(candidate, this.host.options, record !== undefined, (reason) =>
      this.#say(
        { module: candidate.name, file: candidate.source, reason },
        'not a complete zip yet: retrying',
      ),
    )
    if (result === gone) {
      const isBundle = record?.file === candidate.source && candidate.source === candidate.target
      if (isBundle) return { name: candidate.name, kind: 'remove' }
      this.#say({ module: candidate.name, file: candidate.source, trigger }, 'file gone before it was read')
      return undefined
    }
    return result
  }

  #selected(change: Change): boolean {
    const running = this.host.modules.get(change.name)?.bundle?.manifest
    const manifest = change.bundle?.manifest ?? running
    const decision = this.selection.decide(change.name, change.source ?? change.name, manifest, running)
    this.#say(
      { module: change.name, reload: decision.reload, reason: decision.reason },
      `decision: ${decision.reason}`,
    )
    if (!decision.reload && !this.#debug) {
      this.host.log.info(
        { module: change.name, reason: decision.reason },
        `${change.name} changed, not reloaded: ${decision.reason}`,
      )
    }
    return decision.reload
  }

  /**
   * The touch file changed: everything found reloads as one transaction. A
   * first line naming modules (`billing core`) limits it to those.
   */
  async touched(): Promise<ReloadResult> {
    let names: string[] = []
    try {
      const text = await readFile(this.host.options.autoReload.touchFile, 'utf8')
      names = (text.split('\n')[0] ?? '').split(/[\s,]+/).filter(Boolean)
    } catch {
      // an empty or vanished touch file: everything
    }
    this.#say(
      { names },
      names.length > 0 ? `touch file names ${names.join(' ')}` : 'touch file: look at everything',
    )
    return this.#batch('touch', names)
  }

  /** Rescans everything (admin `POST /reload`, SIGHUP) and reloads what changed as one transaction. */
  rescan(trigger = 'rescan'): Promise<ReloadResult> {
    return this.#track(this.#batch(trigger, []))
  }

  async #batch(trigger: string, only: readonly string[]): Promise<ReloadResult> {
    const t0 = performance.now()
    const candidates = (await scanCandidates(this.host.options, this.host.modules)).filter(
      (c) => only.length === 0 || only.includes(c.name),
    )
    const changes: Change[] = []
    for (const c of candidates) {
      const change = await this.#read(c, trigger)
      if (!change) continue
      if ('code' in change) return this.transactions.refuse(trigger, c.name, change, t0)
      if (this.#selected(change)) changes.push(change)
    }
    if (this.host.options.autoReload.monitoringType === 'default') {
      for (const name of removedModules(this.host.modules, this.host.options.modulesDir, only)) {
        const change: Change = { name, kind: 'remove' }
        if (this.#selected(change)) changes.push(change)
      }
    }
    return this.transactions.run(changes, trigger, t0)
  }

  /**
   * Reloads one module now (admin API, `nyala reload <name>`): from its
   * pending `.tmp` or staged file, or its bundle. Unchanged content is a no-op
   * unless `force`. The reload.* selection does not apply to an explicit
   * request, but `reloadable=false` does.
   */
  async reloadModule(name: string, force = false): Promise<ReloadResult> {
    const record = this.host.modules.get(name)
    // default type: a deployed module's content is its own bundle, no need to list modules/
    const ownBundle = this.host.options.autoReload.monitoringType === 'default' && record !== undefined
    const candidates = ownBundle
      ? []
      : (await scanCandidates(this.host.options, this.host.modules)).filter((c) => c.name === name)
    if (!record && candidates.length === 0) throw nyalaError('NYALA_ERR_UNKNOWN_MODULE', { module: name })
    const t0 = performance.now()
    const notReloadable = () =>
      nyalaError('NYALA_ERR_NOT_RELOADABLE', {
        module: name,
        reason: 'reloadable=false in its module.properties',
      })
    // checked before reading: a broken new bundle of such a module is refused as not reloadable
    if (record?.bundle && !record.bundle.manifest.reloadable) throw notReloadable()
    if (candidates.length === 0 && record) {
      candidates.push({
        name,
        source: record.file,
        target: record.file,
        directory: record.bundle?.kind === 'directory',
      })
    }
    const change = await this.#read(candidates[0]!, 'admin')
    if (!change) return this.transactions.run([], 'admin', t0)
    if ('code' in change) return this.transactions.refuse('admin', name, change, t0)
    if (change.bundle && !change.bundle.manifest.reloadable && record) throw notReloadable()
    return this.#track(this.transactions.run([{ ...change, force }], 'admin', t0))
  }
}

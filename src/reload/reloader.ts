import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { sha256Hex } from '../bundle/content-hash.js'
import type { MonitoringType } from '../config/host-options.js'
import { unknownModule } from '../config/unknown-module.js'
import type { NyalaError } from '../errors.js'
import { nyalaError, reasonOf } from '../errors.js'
import { latestArrival, setAside } from './arrivals.js'
import type { Change, ReloadResult } from './change.js'
import { describeDeployPaths } from './deploy-paths.js'
import { fileStamp as signatureOf } from './file-stamp.js'
import type { Watching } from './flat-watcher.js'
import { ModuleLocks } from './module-locks.js'
import { gone, readCandidate } from './read-candidate.js'
import { ReloadEvents } from './reload-events.js'
import type { ReloadHost } from './reload-host.js'
import { ReloadSelection } from './selection.js'
import { type Candidate, classify, removedModules, scanCandidates, scanModule } from './sources.js'
import { ReloadTransactions } from './transaction.js'
import { startWatcher } from './watcher.js'

const touchQuietMs = 30
const verifyDelaysMs = [100, 1000]

/**
 * Turns triggers (the deploy paths being watched, the touch file, the admin
 * API, SIGHUP) into reload transactions. Each module is checked by one check
 * at a time; a change that arrives while its check runs makes it run once
 * more, so a burst of writes costs one reload and the last content always
 * wins. Several deploy paths are watched together; when one module has new
 * content waiting on two of them at once, the one that arrived last is
 * deployed (arrivals.ts).
 */
export class Reloader {
  readonly events = new ReloadEvents()
  readonly locks = new ModuleLocks()
  readonly selection: ReloadSelection
  readonly transactions: ReloadTransactions
  #watcher: Watching | undefined
  readonly #checks = new Map<string, { again: boolean; done: Promise<void> }>()
  /** Candidates reported and not checked yet, by module, then by source path. */
  readonly #pending = new Map<string, Map<string, Candidate>>()
  /**
   * Identity (see signatureOf) of each bundle the host itself wrote into
   * `modules/` by committing a `.tmp` or staged file: the watcher reports that
   * write like any other, and it is neither a deploy nor worth reading again.
   */
  readonly #committed = new Map<string, string>()
  /**
   * What the watcher saw of each reported file (file-stamp.ts), until its check takes it: the
   * check's "identity when checked" without looking at the file again.
   */
  readonly #stamps = new Map<string, string>()
  /**
   * The stamp of each watched file when its last check took it, for `#verifyLater`: a verifier
   * left by an earlier check of that path compares with this, not with what its own check saw,
   * or a new file checked since (a `.tmp` dropped again) would be checked once more.
   */
  readonly #checked = new Map<string, string>()
  /**
   * The stamp of each watched file whose last check refused it: one write can be reported twice
   * (a plain `cp` creates, then writes), and the same bytes are not refused twice. A rewrite, or
   * a touch of the file, changes its stamp; the touch file and the admin API check it anyway.
   * Safe because the stamp is the one noted before the read: a file whose stamp is the same at a
   * later event did not change in between (its ctime cannot go back), so the read saw it as it is.
   * When the first event was noted mid-write the stamps differ and the file is refused twice.
   */
  readonly #refused = new Map<string, string>()
  /** Files already warned about (an inactive deploy path), so each is said once. */
  readonly #warned = new Set<string>()
  readonly #running = new Set<Promise<unknown>>()
  #closed = false
  /** Paths reported while the host was still loading: looked at once it has loaded. */
  #held: [string, string][] | undefined = []
  #touchTimer: NodeJS.Timeout | undefined
  readonly #verifiers = new Set<NodeJS.Timeout>()

  constructor(private readonly host: ReloadHost) {
    this.selection = new ReloadSelection(host.options.reload)
    this.transactions = new ReloadTransactions(host, this.locks, this.events)
  }

  get #debug(): boolean {
    return this.host.options.reload.debug
  }

  /** The deploy paths that reload: none while `auto.reload.modules=false`. */
  get #active(): readonly MonitoringType[] {
    const { enabled, monitoringTypes } = this.host.options.autoReload
    return enabled ? monitoringTypes : []
  }

  /** The deploy paths whose files are picked up without a touch: `.tmp` and staged files. */
  get #dropped(): readonly MonitoringType[] {
    return this.host.options.autoReload.monitoringTypes.filter((t) => t !== 'default')
  }

  #say(fields: Record<string, unknown>, msg: string): void {
    if (this.#debug) this.host.log.info({ reloadDebug: true, ...fields }, msg)
  }

  /**
   * Acts on what was reported while the modules loaded, and picks up `.tmp`
   * and staged files that were already there (left by a crash, or copied while
   * the host was down). The watcher starts before the first bundle is read, so
   * a bundle replaced during start-up is not missed; its check compares
   * content with what was loaded.
   */
  resume(): void {
    const held = this.#held ?? []
    this.#held = undefined
    void this.#track(this.#pickUp(held))
  }

  async #pickUp(held: readonly [string, string][]): Promise<void> {
    const { options, modules } = this.host
    const { enabled, useTouchFile } = options.autoReload
    const present = await scanCandidates(options, modules, ['tmpfile', 'stagingDirectory']).catch(() => [])
    const active = this.#active
    const waiting = present.filter((c) => active.includes(c.type))
    for (const c of present) if (!active.includes(c.type)) await this.#warnInactive(c)
    if (enabled && useTouchFile) {
      if (waiting.length > 0)
        this.host.log.info(
          { files: waiting.map((c) => c.source), touchFile: options.autoReload.touchFile },
          `${waiting.length} file(s) wait for the touch file (use.touch.file=true): ${waiting.map((c) => path.basename(c.source)).join(', ')}`,
        )
      // the touch file written while the modules loaded is the one trigger here: not lost
      for (const [event, file] of held) this.#onPath(event, file)
      return
    }
    if (waiting.length > 0)
      this.host.log.info(
        { files: waiting.map((c) => c.source) },
        `picking up ${waiting.length} file(s) waiting on the deploy paths: ${waiting.map((c) => path.basename(c.source)).join(', ')}`,
      )
    // all queued first: two files of one module are then chosen between, not deployed in turn
    for (const c of waiting) this.#enqueue(c, 'startup', false)
    for (const name of new Set(waiting.map((c) => c.name))) void this.#track(this.#check(name, 'startup'))
    for (const [event, file] of held) this.#onPath(event, file)
  }

  /** Starts watching when `auto.reload.modules=true`; resolves once the watcher is ready. */
  async start(): Promise<void> {
    const { autoReload } = this.host.options
    const paths = describeDeployPaths(this.host.options)
    if (!autoReload.enabled) {
      this.host.log.info({ deployPaths: [] }, paths.summary)
      return
    }
    this.#watcher = await startWatcher(
      this.host.options,
      (event, file, stamp) => this.#onPath(event, file, stamp),
      (err) => this.host.log.warn({ reason: reasonOf(err) }, `watching the deploy paths: ${reasonOf(err)}`),
    )
    this.host.log.info(
      {
        deployPaths: paths.list,
        monitoringType: autoReload.monitoringTypes.join(', '),
        touchFile: autoReload.touchFile,
        useTouchFile: autoReload.useTouchFile,
        polling: autoReload.polling,
        mode: autoReload.mode,
      },
      paths.summary,
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

  #onPath(event: string, file: string, stamp?: string): void {
    if (this.#closed) return
    if (this.#held) {
      this.#held.push([event, file])
      return
    }
    const { autoReload } = this.host.options
    // the touch file is always a trigger; with use.touch.file=true the only one
    if (file === autoReload.touchFile) {
      if (event !== 'unlink') this.#touchSoon()
      return
    }
    if (autoReload.useTouchFile) return
    const candidate = classify(file, this.host.options, this.host.modules)
    this.#say(
      { event, file, candidate: candidate?.name ?? null, via: candidate?.type ?? null },
      `check: ${event} ${file}`,
    )
    if (!candidate) return
    if (!this.#active.includes(candidate.type)) {
      if (event === 'unlink') this.#warned.delete(file)
      else void this.#track(this.#warnInactive(candidate, stamp))
      return
    }
    // a vanished .tmp or staged file was renamed in (its target's event follows) or taken back
    if (event === 'unlink') this.#refused.delete(file)
    if (event === 'unlink' && candidate.type !== 'default') {
      this.#pending.get(candidate.name)?.delete(file)
      return
    }
    if (stamp === undefined) this.#stamps.delete(file)
    else this.#stamps.set(file, stamp)
    this.#enqueue(candidate, 'watch')
  }

  /**
   * A file on a deploy path that is not active: said once, with the key to
   * set. A bundle in `modules/` that holds what already runs is the host's own
   * commit of a `.tmp` or staged file, not a deploy: nothing to say.
   */
  async #warnInactive(c: Candidate, stamp?: string): Promise<void> {
    if (this.#warned.has(c.source)) return
    if (c.type === 'default') {
      if (c.directory)
        return // a transaction renames its file into modules/ (step 5) before it swaps the record
        // (step 6), both under the module's lock: once the lock is free, the record holds what
        // was committed, so the host's own write compares equal below
      ;(await this.locks.acquire([c.name]))()
      // and once the check that ran it is done, the commit's stamp is noted (#run): compared with
      // what the watcher saw, the host's own write is known without reading and hashing it
      await this.#checks.get(c.name)?.done.catch(() => {})
      if (await this.#ownCommit(c.source, stamp)) return
      const running = this.host.modules.get(c.name)?.bundle?.hash
      try {
        const hash = sha256Hex(await readFile(c.source))
        if (hash === running) return
      } catch {
        return
      }
    }
    if (this.#warned.has(c.source) || this.#closed) return
    this.#warned.add(c.source)
    const { enabled, monitoringTypes } = this.host.options.autoReload
    const key = enabled ? 'auto.reload.monitoring.type' : 'auto.reload.modules'
    const value = enabled ? monitoringTypes.join(', ') : 'false'
    const hint = enabled
      ? `add ${c.type} to ${key}, or run "nyala reload ${c.name}"`
      : `set auto.reload.modules=true (or start with --watch), or run "nyala reload ${c.name}"`
    const warning = nyalaError('NYALA_ERR_DEPLOY_PATH_INACTIVE', {
      file: c.source,
      type: c.type,
      key,
      value,
      hint,
    })
    this.host.log.warn({ ...warning.toJSON(), module: c.name }, warning.message)
  }

  #enqueue(candidate: Candidate, trigger: string, check = true): void {
    let waiting = this.#pending.get(candidate.name)
    if (!waiting) {
      waiting = new Map()
      this.#pending.set(candidate.name, waiting)
    }
    waiting.set(candidate.source, candidate)
    if (check) void this.#track(this.#check(candidate.name, trigger))
  }

  /** One check per module at a time; a change during a check runs it once more. */
  #check(name: string, trigger: string): Promise<void> {
    const running = this.#checks.get(name)
    if (running) {
      running.again = true
      return running.done
    }
    const state = { again: false, done: Promise.resolve() }
    state.done = (async () => {
      try {
        do {
          state.again = false
          const waiting = [...(this.#pending.get(name)?.values() ?? [])]
          this.#pending.delete(name)
          if (waiting.length === 0) break
          const candidate = await this.#choose(name, waiting, trigger)
          if (!candidate) continue
          const watched = trigger !== 'admin' && !candidate.directory
          const noted = this.#stamps.get(candidate.source)
          this.#stamps.delete(candidate.source)
          const seen = watched ? (noted ?? (await signatureOf(candidate.source))) : ''
          if (watched) this.#checked.set(candidate.source, seen)
          if (
            trigger === 'watch' &&
            watched &&
            seen !== 'gone' &&
            this.#refused.get(candidate.source) === seen
          ) {
            this.#say({ module: name, file: candidate.source }, 'refused as it is already: not checked again')
            continue
          }
          const result = await this.#checkOnce(candidate, trigger)
          if (watched && result?.result === 'failed') this.#refused.set(candidate.source, seen)
          else this.#refused.delete(candidate.source)
          if (result?.again?.length) this.#enqueue(candidate, trigger)
          if (watched) this.#verifyLater(candidate)
        } while (state.again && !this.#closed)
      } finally {
        this.#checks.delete(name)
      }
    })()
    this.#checks.set(name, state)
    return state.done
  }

  /**
   * Of a module's candidates present at once, the one to deploy (the last to
   * arrive); the others are set aside and said so. `undefined` when every file
   * is gone (a default-type candidate that vanished is kept: it is a removal).
   */
  async #choose(
    name: string,
    candidates: readonly Candidate[],
    trigger: string,
  ): Promise<Candidate | undefined> {
    if (candidates.length === 1) return candidates[0]
    // the bundle in modules/ that the host's own commit just wrote arrived last, but it is not a
    // deploy: compared by arrival it would set aside a .tmp or staged file dropped meanwhile
    const deploys: Candidate[] = []
    for (const c of candidates)
      if (c.type !== 'default' || !(await this.#ownCommit(c.source, this.#stamps.get(c.source))))
        deploys.push(c)
    if (deploys.length === 1) return deploys[0]
    const arrival = await latestArrival(deploys.length > 0 ? deploys : candidates)
    if (!arrival) return candidates.find((c) => c.type === 'default')
    const { winner, losers } = arrival
    for (const loser of losers) {
      let aside: string | undefined
      try {
        aside = await setAside(loser)
      } catch (err) {
        this.host.log.warn(
          { module: name, file: loser.source, reason: reasonOf(err) },
          `cannot set ${loser.source} aside: ${reasonOf(err)}`,
        )
        continue
      }
      const warning = nyalaError('NYALA_ERR_DEPLOY_SUPERSEDED', {
        module: name,
        chosen: winner.source,
        other: loser.source,
        outcome: aside ? `set aside as ${aside}` : 'replaced by it',
      })
      this.host.log.warn(
        { ...warning.toJSON(), module: name, trigger, chosenVia: winner.type, otherVia: loser.type },
        warning.message,
      )
      // the answer for whoever placed the loser (nyala deploy, the console): not deployed
      if (aside)
        this.events.emit({
          id: 0,
          phase: 'superseded',
          trigger,
          modules: [name],
          module: name,
          files: { [name]: loser.source },
          error: { code: warning.code, message: warning.message, at: new Date().toISOString() },
        })
    }
    return winner
  }

  /** Runs a transaction and remembers the files its commit wrote (see `#committed`). */
  async #run(changes: readonly Change[], trigger: string, t0: number): Promise<ReloadResult> {
    const result = await this.transactions.run(changes, trigger, t0)
    if (result.result === 'reloaded') {
      for (const c of changes) {
        if (c.target && c.source && c.source !== c.target)
          this.#committed.set(c.target, await signatureOf(c.target))
      }
    }
    return result
  }

  /** True when `file` (seen as `stamp`, else looked at now) is still exactly what the host's own commit wrote. */
  async #ownCommit(file: string, stamp?: string): Promise<boolean> {
    const mine = this.#committed.get(file)
    return mine !== undefined && mine === (stamp ?? (await signatureOf(file)))
  }

  async #checkOnce(candidate: Candidate, trigger: string): Promise<ReloadResult | undefined> {
    const t0 = performance.now()
    if (candidate.type === 'default' && trigger === 'watch' && (await this.#ownCommit(candidate.source))) {
      this.#say({ module: candidate.name, file: candidate.source }, "the host's own commit: nothing to read")
      return undefined
    }
    const change = await this.#read(candidate, trigger)
    if (!change) return undefined
    if ('code' in change)
      return this.transactions.refuse(trigger, candidate.name, candidate.source, change, t0)
    if (!this.#selected(change)) return undefined
    return this.#run([change], trigger, t0)
  }

  /**
   * A file replaced by a rename just after an earlier rename can go unreported:
   * chokidar re-attaches its watch to the new inode, and an event in between is
   * lost (seen in bench/peers.js: 27 of 57 back-to-back renames). So after a
   * watched check, the file's identity (inode, size, change time) is looked at
   * again a little later; if it moved on since its last check, it is checked once more.
   */
  #verifyLater(candidate: Candidate): void {
    for (const ms of verifyDelaysMs) {
      const timer = setTimeout(async () => {
        this.#verifiers.delete(timer)
        if (this.#closed || this.#checks.has(candidate.name)) return
        const now = await signatureOf(candidate.source)
        if (now === 'gone') this.#checked.delete(candidate.source)
        const seen = this.#checked.get(candidate.source)
        if (now === seen || now === 'gone' || this.#closed || this.#checks.has(candidate.name)) return
        this.#say(
          { module: candidate.name, file: candidate.source },
          'changed without an event: checking again',
        )
        this.#stamps.set(candidate.source, now)
        this.#enqueue(candidate, 'watch')
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
    const result = await this.#batch('touch', names)
    // a touch is a person asking: say what it found even when it found nothing
    if (result.result === 'unchanged') {
      const what = names.length > 0 ? names.join(', ') : 'every deploy path'
      this.host.log.info(
        { trigger: 'touch', names, reload: result.id },
        `touch file: nothing new for ${what}`,
      )
    }
    return result
  }

  /** Rescans everything (admin `POST /reload`, SIGHUP) and reloads what changed as one transaction. */
  rescan(trigger = 'rescan'): Promise<ReloadResult> {
    return this.#track(this.#batch(trigger, []))
  }

  /**
   * Everything new on the active deploy paths (or, with `only`, on those
   * modules' paths) as one transaction. A touch naming modules looks their
   * files up by name instead of listing the modules directory.
   */
  async #batch(trigger: string, only: readonly string[]): Promise<ReloadResult> {
    const t0 = performance.now()
    const { options, modules } = this.host
    const types = options.autoReload.monitoringTypes
    const found: Candidate[] = []
    if (only.length === 0) found.push(...(await scanCandidates(options, modules, types)))
    else for (const name of new Set(only)) found.push(...(await scanModule(name, options, modules, types)))
    const byModule = new Map<string, Candidate[]>()
    for (const c of found) byModule.set(c.name, [...(byModule.get(c.name) ?? []), c])
    const changes: Change[] = []
    // a file that does not open is refused on its own (its own reload id and events, for whoever
    // placed it): it does not hold back the other modules' files found with it
    const refused: ReloadResult[] = []
    for (const [name, candidates] of byModule) {
      // a file found here is handled here: a watcher event for it is not checked again
      this.#pending.delete(name)
      for (const c of candidates) this.#stamps.delete(c.source)
      const c = await this.#choose(name, candidates, trigger)
      if (!c) continue
      const change = await this.#read(c, trigger)
      if (!change) continue
      if ('code' in change) refused.push(this.transactions.refuse(trigger, c.name, c.source, change, t0))
      else if (this.#selected(change)) changes.push(change)
    }
    if (types.includes('default')) {
      for (const name of removedModules(modules, options.modulesDir, only)) {
        const change: Change = { name, kind: 'remove' }
        if (this.#selected(change)) changes.push(change)
      }
    }
    if (changes.length === 0 && refused.length > 0) return refused[0]!
    const result = await this.#run(changes, trigger, t0)
    if (refused.length === 0) return result
    const said = refused.map((r) => ({
      module: r.error?.module ?? r.changed[0] ?? '',
      code: r.error?.code ?? '',
      message: r.error?.message ?? '',
    }))
    return { ...result, refused: said }
  }

  /**
   * Reloads one module now (admin API, `nyala reload <name>`): from its
   * pending `.tmp` or staged file, or its bundle. Unchanged content is a no-op
   * unless `force`. The reload.* selection does not apply to an explicit
   * request, but `reloadable=false` does.
   */
  async reloadModule(name: string, force = false): Promise<ReloadResult> {
    const { options, modules } = this.host
    const record = modules.get(name)
    // the module's own bundle is its content unless a .tmp or staged file waits
    const dropped = await scanModule(name, options, modules, this.#dropped)
    if (!record && dropped.length === 0) throw unknownModule(name, modules.keys())
    const t0 = performance.now()
    const notReloadable = () =>
      nyalaError('NYALA_ERR_NOT_RELOADABLE', {
        module: name,
        reason: 'reloadable=false in its module.properties',
      })
    // checked before reading: a broken new bundle of such a module is refused as not reloadable
    if (record?.bundle && !record.bundle.manifest.reloadable) throw notReloadable()
    this.#pending.delete(name)
    let candidate = dropped.length > 0 ? await this.#choose(name, dropped, 'admin') : undefined
    if (!candidate && record) {
      candidate = {
        name,
        source: record.file,
        target: record.file,
        directory: record.bundle?.kind === 'directory',
        type: 'default',
      }
    }
    if (!candidate) throw unknownModule(name, modules.keys())
    const change = await this.#read(candidate, 'admin')
    if (!change) return this.transactions.run([], 'admin', t0)
    if ('code' in change) return this.transactions.refuse('admin', name, candidate.source, change, t0)
    if (change.bundle && !change.bundle.manifest.reloadable && record) throw notReloadable()
    return this.#track(this.#run([{ ...change, force }], 'admin', t0))
  }
}

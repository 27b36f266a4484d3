import { existsSync, statSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { Server as HttpServer, type Server } from 'node:http'
import { type AddressInfo, Server as NetServer, type Socket } from 'node:net'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { errorFromWire } from './bundle/bundle-transfer.js'
import { findBundles } from './bundle/find-bundles.js'
import type { Manifest } from './bundle/manifest.js'
import { moduleNameOf } from './bundle/module-name.js'
import { type Bundle, openBundle, withoutContents } from './bundle/open-bundle.js'
import { currentTrustPolicy, type TrustPolicy } from './bundle/trust-store.js'
import type { HostOptions } from './config/host-options.js'
import { readPropertiesFileAsync } from './config/read-properties.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from './errors.js'
import { DependentsIndex } from './graph/dependents-index.js'
import { type GraphPlan, nodeOf, planGraph } from './graph/module-graph.js'
import { answerAdminClientError, createAdminApp } from './http/admin.js'
import type { AdminHost } from './http/admin-host.js'
import { adminUrlFileOf, removeAdminUrl } from './http/admin-url.js'
import { DispatchTable, prefixConflicts, type Route } from './http/dispatch-table.js'
import { Dispatcher } from './http/dispatcher.js'
import { closeServer, httpUrlOf, listen, listenPaused } from './http/listener.js'
import './http/tick-shape.js'
import { IsolatedGeneration } from './isolate/isolated-generation.js'
import { IsolationChoice, type RunningModules } from './isolate/isolation.js'
import { ModuleThread } from './isolate/module-thread.js'
import { bundleReader } from './loader/bundle-reader.js'
import { codeCacheCounts } from './loader/code-cache.js'
import { FileCache } from './loader/file-cache.js'
import { primeReader } from './loader/prime-reader.js'
import { transformCounts } from './loader/transform.js'
import type { Logger } from './logger.js'
import { crashActions } from './reload/crash-actions.js'
import { InProcessRuntime } from './reload/in-process-runtime.js'
import type { ModuleRuntime } from './reload/module-runtime.js'
import { recoverLeftovers } from './reload/recover-leftovers.js'
import type { ReloadHost } from './reload/reload-host.js'
import { Reloader } from './reload/reloader.js'
import type { RequestGate } from './reload/request-gate.js'
import { liveOwners, tagThrown } from './runtime/code-owner.js'
import { Generation, type GenerationInit } from './runtime/generation.js'
import { mapLimit } from './runtime/map-limit.js'
import { describeRecord, type ModuleRecord, newRecord } from './runtime/module-record.js'
import { type CrashOrigin, Supervisor } from './supervise/supervisor.js'
import type { UpgradeHost } from './upgrade/upgrade-host.js'

// enough to keep the disk busy without running into the open-file limit with 1000 bundles
const openConcurrency = 16

export type HostRole = 'single' | 'supervisor' | 'worker'

export interface HostInit {
  /** @default 'single' */
  readonly role?: HostRole
  /** Generation numbers to start modules at (a replacement worker). @default empty */
  readonly startNumbers?: ReadonlyMap<string, number>
}

/**
 * The host: loads every bundle of the modules directory, orders the modules
 * by their dependencies, starts them, and serves them from one listener.
 * Only a bad host configuration stops start-up; a bad module is `failed`
 * with its reason and every other module serves. The parts below it see it
 * through the narrow interfaces they own (docs/architecture.md).
 */
export class NyalaHost implements ReloadHost, AdminHost, UpgradeHost {
  readonly options: HostOptions
  readonly log: Logger
  readonly dispatcher = new Dispatcher()
  readonly modules = new Map<string, ModuleRecord>()
  /** The dependency edges of `modules`; whoever changes a record's bundle updates it. */
  readonly graph = new DependentsIndex()
  /** Start order of the last load; stop runs it backwards. */
  #order: string[] = []
  /**
   * The listening servers by name (`http`, and `admin` once the admin API is on):
   * a process upgrade hands every one of them to the successor.
   */
  readonly servers = new Map<string, Server>()
  /** Set once `close` began: a crash then restarts nothing. */
  closing = false
  /** A successor loads its modules before it asks for the listeners, then starts. */
  #prepared = false
  /** Which modules run in a thread of their own (src/isolate/). */
  readonly isolation: IsolationChoice
  /** The thread of each isolated module that has one, kept across its generations. */
  readonly threads = new Map<string, ModuleThread>()

  /**
   * `single`: modules run here (workers=1). `supervisor`: modules run in worker
   * processes (`runtime` is their pool); this process owns the listeners, the
   * watcher and the admin API. `worker`: modules run here, driven by a supervisor.
   */
  readonly role: HostRole
  /** A replacement worker starts each module at the generation its peers serve. */
  readonly #startNumbers: ReadonlyMap<string, number>

  constructor(options: HostOptions, log: Logger, init: HostInit = {}) {
    this.options = options
    this.log = log
    this.role = init.role ?? 'single'
    this.#startNumbers = init.startNumbers ?? new Map()
    this.files = new FileCache(options.cacheDir, log.child({ cache: options.cacheDir }))
    this.isolation = new IsolationChoice(options.isolation)
    this.runtime = new InProcessRuntime(this)
    this.reloader = new Reloader(this)
    this.supervisor = new Supervisor(crashActions(this, this.reloader), options.crash)
    // a reload someone asked for (a deploy of the module, `nyala reload <it>`) starts a fresh
    // restart count; a dependent rebuilt because a dependency reloaded keeps its count, or
    // redeploying the dependency would keep a crash-looping dependent under its limit for ever
    this.reloader.events.on((e) => {
      if (e.phase !== 'swapped' || e.trigger === 'crash') return
      for (const m of e.changed ?? e.modules) this.supervisor.reset(m)
    })
  }

  /**
   * Restarts or fails a module whose code crashed; the process's
   * `uncaughtException` and `unhandledRejection` handlers hand errors to it
   * (src/upgrade/process-lifecycle.ts).
   */
  readonly supervisor: Supervisor
  /** The bundles' files on disk (`cache.directory`), one directory per distinct content. */
  readonly files: FileCache

  get address(): AddressInfo | undefined {
    return (this.servers.get('http')?.address() as AddressInfo | null) ?? undefined
  }

  readonly reloader: Reloader
  /** The supervisor's: hands an accepted connection to a worker process. */
  #handToWorker: ((socket: Socket) => void) | undefined

  /** Makes this host a supervisor's: modules run in `runtime`'s workers, connections go to `handTo`. */
  useWorkers(runtime: ModuleRuntime, handTo: (socket: Socket) => void): void {
    this.runtime = runtime
    this.#handToWorker = handTo
  }
  /**
   * Where module code runs for reloads: this process. A supervisor of worker
   * processes replaces it (src/cluster/) before `start`.
   */
  runtime: ModuleRuntime
  /**
   * Gates of blocking-mode reloads under way, by module. Kept here, not passed
   * to `publish`, so a reload of unrelated modules that publishes meanwhile
   * does not open another reload's gates.
   */
  readonly gates = new Map<string, RequestGate>()
  #endAdminStreams: () => void = () => {}
  #adminApp: FastifyInstance | undefined
  /** The URL this host wrote to the admin URL file, once written. */
  #adminUrlWritten: string | undefined

  /**
   * Loads the modules, then listens. `inherited` maps a listener name to a
   * listening descriptor handed over by the previous process (upgrade).
   */
  async start(
    inherited: ReadonlyMap<string, number> = new Map(),
    beforeAccepting?: (adopted: readonly string[]) => Promise<void>,
  ): Promise<AddressInfo> {
    await this.prepare()
    const adminFd = inherited.get('admin')
    const httpFd = inherited.get('http')
    // A listener of its own binds before `beforeAccepting` (a successor's acknowledgement): its
    // failure is still a refusal the old process survives. An inherited one accepts only after
    // it: the old process accepts on that socket until it has the acknowledgement, and two
    // processes accepting at once would let a client see old, new, old.
    let admin = adminFd === undefined ? await this.#listenAdmin(undefined) : undefined
    let address = httpFd === undefined ? await this.#listenHttp(undefined) : undefined
    await beforeAccepting?.(['admin', 'http'].filter((name) => inherited.has(name)))
    // HTTP first: from here to its listen, its connections wait in the socket's backlog
    address ??= await this.#listenHttp(httpFd)
    admin ??= await this.#listenAdmin(adminFd)
    const running = [...this.modules.values()].filter((m) => m.state === 'running').length
    this.log.info(
      {
        host: address.address,
        port: address.port,
        adminHost: admin.address,
        adminPort: admin.port,
        modules: this.modules.size,
        running,
      },
      `listening on ${httpUrlOf(address)}`,
    )
    return address
  }

  async #listenHttp(fd: number | undefined): Promise<AddressInfo> {
    const at = {
      host: this.options.host,
      port: this.options.port,
      describe: { name: 'HTTP listener', keys: 'port / host, --port or NYALA_PORT' },
      ...(fd === undefined ? {} : { fd }),
    }
    const { server, address } =
      this.role === 'supervisor'
        ? await listenPaused(this.#handToWorker!, at)
        : await listen(this.dispatcher.handle, { ...at, upgrade: this.dispatcher.upgrade })
    // the supervisor's listener is a plain TCP one: a process upgrade hands its descriptor over alike
    this.servers.set('http', server as Server)
    return address
  }

  /** The admin API on its own listener; its URL is written beside the pidfile for `nyala status`. */
  async #listenAdmin(fd: number | undefined): Promise<AddressInfo> {
    const app = this.#adminApp!
    const { server, address } = await listen((req, res) => app.routing(req, res), {
      host: this.options.admin.host,
      port: this.options.admin.port,
      describe: { name: 'admin API', keys: 'admin.port / admin.host or --admin-port' },
      ...(fd === undefined ? {} : { fd }),
    })
    this.servers.set('admin', server)
    server.on('clientError', answerAdminClientError)
    const url = httpUrlOf(address)
    try {
      // its own directory only: never recreate a root that was removed under a running host
      await mkdir(path.dirname(this.adminUrlFile)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err
      })
      await writeFile(this.adminUrlFile, `${url}\n`)
      this.#adminUrlWritten = url
    } catch (err) {
      this.log.warn({ file: this.adminUrlFile, reason: reasonOf(err) }, 'cannot write the admin URL file')
    }
    this.log.info({ adminHost: address.address, adminPort: address.port }, `admin API on ${url}`)
    return address
  }

  /** Where the admin API's URL is written, for `nyala status` and `nyala reload`. */
  get adminUrlFile(): string {
    return adminUrlFileOf(this.options)
  }

  /** Removes the admin URL file this host wrote, if it still holds that URL (process-lifecycle.ts decides when). */
  forgetAdminUrl(): void {
    if (this.#adminUrlWritten !== undefined) removeAdminUrl(this.adminUrlFile, this.#adminUrlWritten)
  }

  /**
   * Everything before listening: watch, load and start the modules. `start` runs
   * it; a successor (process upgrade) runs it first, before it asks for the listeners.
   */
  async prepare(): Promise<void> {
    if (this.#prepared) return
    this.#prepared = true
    this.dispatcher.blockTimeoutMs = this.options.autoReload.blockTimeoutMs
    if (this.role === 'worker') {
      // the supervisor watches, reads bundles and writes the deploy paths: a worker only loads
      await this.loadAll()
      return
    }
    // the bundle reader's thread starts beside the modules, not during the first reload under load
    const reader = bundleReader.warm()
    // before the watcher and the first read: what a killed predecessor left half done is settled
    await recoverLeftovers(this.options, this.log)
    await this.reloader.start()
    await this.loadAll()
    // what an earlier run or a killed process left, once this one holds what it uses
    void this.files.sweep().then(
      (removed) => {
        if (removed > 0)
          this.log.info({ dir: this.files.dir, removed }, `removed ${removed} unused cache directories`)
      },
      (err: unknown) =>
        this.log.warn({ dir: this.files.dir, reason: reasonOf(err) }, 'cannot sweep the cache directory'),
    )
    await reader
    this.reloader.resume()
    if (this.options.bundleReaderPrime) void this.#primeReader()
    // built here, not when listening: a successor builds it before the handover, not during it
    const { app, endStreams } = await createAdminApp(this, this.reloader)
    this.#adminApp = app
    this.#endAdminStreams = endStreams
  }

  /** `bundle.reader.prime`, in the background once the modules run: one log line when done. */
  async #primeReader(): Promise<void> {
    const bundles: Bundle[] = []
    for (const record of this.modules.values()) if (record.bundle) bundles.push(record.bundle)
    const done = await primeReader(
      bundleReader,
      bundles,
      { maxBytes: this.options.bundleMaxBytes },
      () => this.closing,
    )
    if (done.kept > 0)
      this.log.info(
        { kept: done.kept, heldBytes: done.held, ms: Math.round(done.ms) },
        `bundle reader: ${done.kept} bundles read ahead for their first reload (${(done.held / 1048576).toFixed(1)} MiB kept) in ${Math.round(done.ms)} ms`,
      )
  }

  /** Opens every bundle, plans the graph, starts the modules in dependency order. */
  async loadAll(): Promise<void> {
    const dir = this.options.modulesDir
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw nyalaError('NYALA_ERR_DIRECTORY_NOT_FOUND', { what: 'modules', path: dir })
    }
    const t0 = performance.now()
    const files = await findBundles(dir, this.options.autoReload.stagingDir)
    this.log.info({ modulesDir: dir, bundles: files.length }, `loading ${files.length} bundles from ${dir}`)
    const trust = currentTrustPolicy(this.options.signature)
    this.log.info(
      {
        signaturesRequired: trust.required,
        trustedKeys: trust.keys.length,
        threshold: trust.threshold,
        trustedKeysDir: trust.dir,
      },
      `bundle signatures ${trust.required ? 'required' : 'checked when present'}: ${trust.keys.length} trusted key(s) in ${trust.dir}, threshold ${trust.threshold}`,
    )
    const opened = await mapLimit(files, openConcurrency, (file) => this.#open(file, trust))

    const byName = new Map<string, { file: string; result: Bundle | NyalaError }[]>()
    for (const [i, result] of opened.entries()) {
      const file = files[i]!
      const name =
        result instanceof Error
          ? (moduleNameOf(file, !path.extname(file)) ?? path.basename(file))
          : result.name
      byName.set(name, [...(byName.get(name) ?? []), { file, result }])
    }
    const bundles = new Map<string, Bundle>()
    for (const [name, [first, second]] of byName) {
      const record = this.#record(name, first!.file)
      if (second) {
        this.fail(
          record,
          nyalaError('NYALA_ERR_BUNDLE_DUPLICATE', { module: name, bundle: first!.file, other: second.file }),
        )
        continue
      }
      const result = first!.result
      if (result instanceof Error) {
        this.fail(record, result)
        continue
      }
      for (const w of result.warnings) this.log.warn({ ...w.toJSON(), module: name }, w.message)
      record.bundle = result
      bundles.set(name, result)
    }

    for (const c of prefixConflicts(
      [...bundles.values()].map((b) => ({ module: b.name, prefix: b.manifest.prefix })),
    )) {
      const err = nyalaError('NYALA_ERR_PREFIX_CONFLICT', c)
      for (const name of [c.module, c.other]) {
        bundles.delete(name)
        this.fail(this.modules.get(name)!, err)
      }
    }

    // one write of this process's cache lease for every bundle, not one per module started
    await this.files.reserve(bundles.values()).catch(() => {})
    // modules that failed to open stay in the graph, so their dependents report them as failed, not missing
    const nodes = [...this.modules.values()].map((m) => nodeOf(m.name, m.bundle?.manifest))
    for (const node of nodes) this.graph.set(node)
    const plan = planGraph(nodes)
    this.#order = [...plan.order]
    if (this.role === 'supervisor') await this.#loadInWorkers(plan, bundles)
    else await this.#startAll(plan, bundles)
    this.publish()
    const counts = this.#counts()
    this.log.info(
      { ...counts, ms: Math.round(performance.now() - t0) },
      `modules loaded: ${counts.running} running, ${counts.failed} failed`,
    )
  }

  async #startAll(plan: GraphPlan, bundles: ReadonlyMap<string, Bundle>): Promise<void> {
    for (const name of plan.order) {
      const record = this.modules.get(name)!
      const bundle = bundles.get(name)
      if (!bundle) continue
      const planned = plan.failures.get(name)
      if (planned) {
        this.fail(record, planned)
        continue
      }
      const down = bundle.manifest.dependsOn.find((d) => this.modules.get(d)?.state !== 'running')
      if (down !== undefined) {
        this.fail(record, nyalaError('NYALA_ERR_DEPENDENCY_FAILED', { module: name, dependency: down }))
        continue
      }
      await this.#startModule(record, bundle)
    }
  }

  /**
   * The supervisor's records say what its workers run: each worker loads every
   * module itself; the first one's outcome is taken (they load the same files).
   * A module this process already refused (a bundle that does not open, a
   * duplicate, a prefix conflict, a cycle) is failed here whatever they say.
   */
  async #loadInWorkers(plan: GraphPlan, bundles: ReadonlyMap<string, Bundle>): Promise<void> {
    const views = await this.runtime.loadAll!()
    for (const name of plan.order) {
      const record = this.modules.get(name)!
      if (!bundles.has(name)) continue
      const planned = plan.failures.get(name)
      if (planned) {
        this.fail(record, planned)
        continue
      }
      const view = views.get(name)
      if (view?.state === 'running') {
        record.state = 'running'
        record.error = undefined
      } else {
        record.state = 'failed'
        record.error = view?.error
          ? (errorFromWire(view.error) as NyalaError)
          : nyalaError('NYALA_ERR_MODULE_REGISTER_FAILED', { module: name, reason: 'no worker loaded it' })
      }
    }
  }

  async #open(file: string, trust: TrustPolicy): Promise<Bundle | NyalaError> {
    try {
      const bundle = await openBundle(file, { maxBytes: this.options.bundleMaxBytes, trust })
      // an isolated module's thread reads its bundle itself: opened here only to be checked, its
      // files would stay in the serving thread's heap for nothing (a reload's read leaves them too)
      return this.isolation.isolated(bundle.name, bundle.manifest) ? withoutContents(bundle) : bundle
    } catch (err) {
      if (isNyalaError(err)) return err
      return nyalaError('NYALA_ERR_BUNDLE_READ', { bundle: file, reason: reasonOf(err) }, err)
    }
  }

  #record(name: string, file: string): ModuleRecord {
    let record = this.modules.get(name)
    if (!record) {
      record = newRecord(name, file)
      this.modules.set(name, record)
    }
    return record
  }

  fail(record: ModuleRecord, err: NyalaError): void {
    record.state = 'failed'
    record.error = err
    this.log.error({ ...err.toJSON(), module: record.name, bundle: record.file }, err.message)
  }

  /** The module's own settings, `config/<name>.properties`, as raw strings. */
  async #moduleConfig(name: string): Promise<Readonly<Record<string, string>>> {
    const values = await readPropertiesFileAsync(path.join(this.options.configDir, `${name}.properties`))
    return Object.freeze(Object.fromEntries(values ?? []))
  }

  async #startModule(record: ModuleRecord, bundle: Bundle): Promise<void> {
    const number = this.#startNumbers.get(record.name)
    if (number !== undefined && record.generations < number - 1) record.generations = number - 1
    const started = await this.startGeneration(record, bundle, undefined, (dep) => this.runningProvided(dep))
    if (!(started instanceof Generation)) {
      this.fail(record, started)
      return
    }
    record.generation = started
    record.state = 'running'
    record.error = undefined
  }

  /** What a running module provided, for `ctx.use`; `undefined` when it does not run. */
  runningProvided(name: string): unknown {
    const target = this.modules.get(name)
    return target?.state === 'running' ? target.generation?.provided : undefined
  }

  /**
   * Builds and starts the next generation of a module from `bundle`, and logs
   * it. Resolves with the generation, or with the error it failed with (the
   * caller decides what a failure means: at start-up the module is failed, in a
   * reload the old generation keeps serving).
   */
  async startGeneration(
    record: ModuleRecord,
    bundle: Bundle,
    previous: unknown,
    lookup: (dep: string) => unknown,
  ): Promise<Generation | NyalaError> {
    const problem = this.isolation.dependencyProblem(bundle.name, bundle.manifest, this.#running)
    if (problem) return problem
    const number = record.generations + 1
    record.generations = number
    let generation: Generation
    try {
      const init: GenerationInit = {
        bundle,
        generation: number,
        config: await this.#moduleConfig(bundle.name),
        log: this.log.child({ module: bundle.name, generation: number }),
        previous,
        lookup,
        startTimeoutMs: this.options.moduleStartTimeoutMs,
        stopTimeoutMs: this.options.moduleStopTimeoutMs,
        logRequests: this.options.logRequests,
        previousCode: record.generation?.code,
        stats: record.stats,
        files: this.files,
        makeCodeCaches: (b, entries) => void bundleReader.makeCodeCaches(b, entries),
      }
      generation = this.isolation.isolated(bundle.name, bundle.manifest)
        ? new IsolatedGeneration(init, this.#threadOf(bundle.name), record.file)
        : new Generation(init)
      await generation.start()
    } catch (err) {
      // numbers count generations that served: the next attempt reuses this one
      if (record.generations === number) record.generations = number - 1
      return isNyalaError(err)
        ? err
        : nyalaError('NYALA_ERR_MODULE_REGISTER_FAILED', { module: record.name, reason: reasonOf(err) }, err)
    }
    this.log.info(
      {
        module: bundle.name,
        version: bundle.manifest.version,
        generation: number,
        prefix: bundle.manifest.prefix,
        bundle: bundle.file,
        ms: Math.round(generation.startMs * 10) / 10,
        ...(generation instanceof IsolatedGeneration
          ? { isolation: 'thread', thread: generation.thread.threadId, inThread: generation.threadTimes }
          : {}),
        // ES module and TypeScript transforms so far in this process: a reload of unchanged files adds none
        transforms: transformCounts(),
        // code caches (src/loader/code-cache.ts) so far: a reload of unchanged scripts uses them
        codeCache: codeCacheCounts(),
      },
      `module ${bundle.name} ${bundle.manifest.version} started (generation ${number})`,
    )
    return generation
  }

  /** The running modules and their manifests, for the isolation's dependency check. */
  readonly #running: RunningModules = {
    get: (name) => {
      const record = this.modules.get(name)
      return record?.state === 'running' ? { manifest: record.bundle?.manifest } : undefined
    },
    all: () => this.#runningManifests(),
  };

  *#runningManifests(): Iterable<{ name: string; manifest: Manifest | undefined }> {
    for (const record of this.modules.values())
      if (record.state === 'running') yield { name: record.name, manifest: record.bundle?.manifest }
  }

  /**
   * The thread of an isolated module: its running one, or a new one (its
   * first generation, or after the last one ended, crashed or stalled).
   */
  #threadOf(module: string): ModuleThread {
    const running = this.threads.get(module)
    if (running && running.state !== 'exited' && running.state !== 'stalled') return running
    const thread = new ModuleThread(module, this.options, this.log, {
      crashed: (t, err, origin, generation) => this.#threadCrashed(t, err, origin, generation),
      ended: (t) => {
        if (this.threads.get(module) === t) this.threads.delete(module)
      },
    })
    this.threads.set(module, thread)
    return thread
  }

  /**
   * A crash in a module's thread (module code's, or the thread's own end or
   * stall) goes to the supervisor as a crash of that generation, so
   * `module.crash.policy` applies as for a module in this thread.
   */
  #threadCrashed(thread: ModuleThread, err: Error, origin: CrashOrigin, number: number | null): void {
    for (const owner of liveOwners)
      if (owner.module === thread.module && owner.generation === number) tagThrown(err, owner)
    if (!this.supervisor.handle(err, origin))
      this.log.error(
        { module: thread.module, generation: number, reason: err.message, stack: err.stack },
        `module ${thread.module}: a crash in its thread, of no generation still live: ${err.message}`,
      )
  }

  /** Start order of the modules (dependencies first); a reload updates it. */
  get order(): readonly string[] {
    return this.#order
  }

  set order(order: readonly string[]) {
    this.#order = [...order]
  }

  /**
   * Builds the dispatch table from the records and swaps it in one step: the
   * whole table, or with `names`, the current table with those modules' routes
   * made anew (a reload passes what it touched, so its cost follows the change).
   * Modules with a gate (blocking-mode reload) hold their requests until it opens.
   */
  publish(names?: Iterable<string>): void {
    const routes: Route[] = []
    if (names === undefined) {
      for (const record of this.modules.values()) this.#pushRoute(routes, record)
      this.dispatcher.swap(new DispatchTable(routes))
      return
    }
    const replaced = [...names]
    for (const name of replaced) {
      const record = this.modules.get(name)
      if (record) this.#pushRoute(routes, record)
    }
    this.dispatcher.swap(this.dispatcher.table.replace(replaced, routes))
  }

  #pushRoute(routes: Route[], record: ModuleRecord): void {
    const prefix = record.bundle?.manifest.prefix
    if (prefix === undefined || record.error?.code === 'NYALA_ERR_PREFIX_CONFLICT') return
    routes.push({
      module: record.name,
      prefix,
      generation: record.state === 'running' ? record.generation : undefined,
      state: record.state,
      gate: this.gates.get(record.name),
    })
  }

  #counts(): { running: number; failed: number } {
    let running = 0
    let failed = 0
    for (const m of this.modules.values()) {
      if (m.state === 'running') running++
      else if (m.state === 'failed') failed++
    }
    return { running, failed }
  }

  /** The modules as plain objects, in start order. */
  describe(): Record<string, unknown>[] {
    const order = new Map(this.#order.map((n, i) => [n, i]))
    return [...this.modules.values()]
      .sort((a, b) => (order.get(a.name) ?? 1e9) - (order.get(b.name) ?? 1e9) || a.name.localeCompare(b.name))
      .map((record) => {
        const row = { ...describeRecord(record), ...this.#isolationView(record) }
        const of = this.runtime.generationsOf
        if (!of) return row
        // a supervisor runs no module: the generation is its workers' (the same in all, or not)
        const generations = of.call(this.runtime, record.name)
        const running = generations.filter((g): g is number => g !== null)
        return {
          ...row,
          generation: record.state === 'running' ? (running[0] ?? null) : null,
          workers: { generations, same: new Set(generations).size <= 1 },
        }
      })
  }

  /** `isolation` (`none` or `thread`) and, for an isolated module, its thread as it is now. */
  #isolationView(record: ModuleRecord): Record<string, unknown> {
    if (!this.isolation.isolated(record.name, record.bundle?.manifest)) return { isolation: 'none' }
    // a supervisor runs no module: each worker process has the module's thread
    if (this.role === 'supervisor') return { isolation: 'thread', thread: null, threadIn: 'workers' }
    const thread = this.threads.get(record.name)
    return {
      isolation: 'thread',
      thread: thread
        ? { state: thread.state, threadId: thread.threadId, tid: thread.tid, nice: thread.nice }
        : null,
    }
  }

  /**
   * Stops accepting, lets in-flight requests finish for up to `graceMs`, then
   * stops the modules in reverse dependency order.
   */
  async close(graceMs = this.options.process.shutdownGraceMs): Promise<void> {
    this.closing = true
    // what the modules use stays on disk for the next start (its sweep removes what it does not use)
    this.files.keepOnRelease()
    const deadline = Date.now() + graceMs
    // The listeners first, before waiting for anything: from here on no connection is accepted
    // and every request on a kept-alive one is answered with `Connection: close`. After a
    // handover the successor already accepts, so each request this process still takes is one
    // its client could have sent to the new code; waiting for the reloader and the bundle
    // reader's thread first (tens of ms on a loaded machine) kept keep-alive clients here.
    const listeners = [...this.servers.values()].map((server) =>
      // the supervisor's TCP listener only stops accepting: its workers drain the connections
      server instanceof HttpServer
        ? closeServer(server, graceMs)
        : new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve())),
    )
    this.runtime.drain?.(graceMs)
    // open WebSockets keep their server's close waiting: the end of the grace period ends them
    // (close frame 1001 "going away"), as a reload's drain timeout does
    const endUpgraded = setTimeout(() => {
      for (const record of this.modules.values()) record.generation?.endUpgraded()
    }, graceMs)
    await this.reloader.close()
    // reloads are done: the bundle reader's thread has nothing left to do (a later read starts it again)
    await bundleReader.close()
    this.#endAdminStreams()
    await Promise.all([
      ...listeners,
      // workers stop only once no reload is running (a reload talks to every worker); their
      // kept-alive connections have been draining since `drain` above
      this.runtime.close?.(Math.max(0, deadline - Date.now())),
    ])
    clearTimeout(endUpgraded)
    this.servers.clear()
    for (const name of [...this.#order].reverse()) {
      const record = this.modules.get(name)
      const generation = record?.generation
      if (!record || !generation) continue
      await generation.waitIdle(Math.max(0, deadline - Date.now()))
      await generation.stop()
      record.state = 'stopped'
      record.generation = undefined
      this.log.info({ module: name, generation: generation.number }, `module ${name} stopped`)
    }
    this.dispatcher.swap(new DispatchTable([]))
    // a thread whose last generation stopped has ended; one that never got one ends here
    await Promise.all([...this.threads.values()].map((t) => t.close()))
    await this.files.close()
  }
}

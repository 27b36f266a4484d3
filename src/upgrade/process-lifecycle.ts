import { isNyalaError, nyalaError, reasonOf } from '../errors.js'
import { httpUrlOf } from '../http/listener.js'
import type { Logger } from '../logger.js'
import { exitCodes, reportFatal } from '../process-exit.js'
import { installCrashHandlers } from '../supervise/process-handlers.js'
import type { CrashOrigin } from '../supervise/supervisor.js'
import { CrashChain } from './crash-chain.js'
import { replaceProcess, type SuccessorCommand } from './crash-handover.js'
import { killGroup } from './daemonize.js'
import { handOver } from './hand-over.js'
import { decideHostCrash, type Phase } from './host-crash-policy.js'
import { checkPidfileFree, readPid, releasePidfile, writePidfile } from './pidfile.js'
import { Readiness } from './readiness.js'
import { takeOver } from './take-over.js'
import type { UpgradeHost } from './upgrade-host.js'

export interface ProcessMode {
  /** Start as the successor of a running instance (`--upgrade`). */
  readonly upgrade: boolean
  /** SIGHUP while serving (module rescan); ignored before the instance serves. */
  readonly onHangup?: () => void
  /**
   * How to start a successor like this process, for `host.crash.action=upgrade`;
   * without it a host crash exits 1.
   */
  readonly successor?: SuccessorCommand
}

/** Host errors logged in full while a replacement runs; more are only counted. */
const maxLoggedHostErrors = 10
/** A successor writes the pidfile right after its acknowledgement; this is room for a loaded machine. */
const pidfileWaitMs = 10_000
/** Past the successor's start, the handover's own bounds (connect, two answers, adoption) and spare. */
const handoverBoundMs = 40_000

type StopRequest = { signal: NodeJS.Signals; graceMs: number; fast: boolean }

/**
 * A whole `nyala start` process around the host: the pidfile, readiness for
 * `--daemonize`, the successor's wait (`--upgrade`), and the signals: SIGQUIT hands
 * the listeners to a successor, SIGTERM stops gracefully, SIGINT stops within
 * `shutdown.fast.timeout`, SIGHUP calls `mode.onHangup`. Resolves with the exit code.
 */
export async function runProcess(host: UpgradeHost, log: Logger, mode: ProcessMode): Promise<number> {
  const { pidFile, upgradeSocket, shutdownGraceMs, shutdownFastMs } = host.options.process
  const readiness = new Readiness()
  const startup = new AbortController()
  let phase: Phase = 'starting'
  let pendingStop: StopRequest | undefined
  let handedOver = false
  let hardStop: NodeJS.Timeout | undefined
  let settle: (code: number) => void = () => {}
  const exited = new Promise<number>((resolve) => {
    settle = resolve
  })

  const releaseFiles = () => {
    releasePidfile(pidFile)
    host.forgetAdminUrl()
  }

  const finish = (code: number) => {
    clearTimeout(hardStop)
    // after a handover the pidfile names the successor, or is about to: never remove it then;
    // nor the admin URL file, which the successor writes with the same URL
    if (!handedOver) releaseFiles()
    settle(code)
  }

  const stop = (req: StopRequest) => {
    if (phase === 'starting') {
      pendingStop ??= req
      startup.abort(new Error(`${req.signal} before serving`))
      log.info({ signal: req.signal }, `${req.signal}: stopping once start-up ends`)
      return
    }
    if (phase === 'stopping') {
      log.warn({ signal: req.signal }, `${req.signal} again: exiting now`)
      finish(exitCodes.failure)
      return
    }
    phase = 'stopping'
    log.info(
      { signal: req.signal, graceMs: req.graceMs },
      `${req.signal}: stopping (grace ${req.graceMs} ms)`,
    )
    if (req.fast) {
      // module stop hooks have their own, longer timeout: a fast stop must not wait for them
      hardStop = setTimeout(() => {
        log.warn({ signal: req.signal, timeout: req.graceMs }, 'shutdown.fast.timeout passed: exiting now')
        finish(exitCodes.failure)
      }, req.graceMs)
    }
    drain(req.graceMs)
  }

  /**
   * After a handover, `successor` is the new pid: the exit waits (bounded) until the
   * pidfile names it, so a process manager that follows the pidfile (systemd's
   * `PIDFile=`) reads the new pid when this one is gone, never a stale one.
   */
  const drain = (graceMs: number, successor?: number) =>
    host.close(graceMs).then(
      async () => {
        if (successor !== undefined) await pidfileNames(pidFile, successor, log)
        log.info('stopped')
        finish(exitCodes.ok)
      },
      (err: unknown) => finish(reportFatal(log, err)),
    )

  const quit = () => {
    if (phase !== 'serving') {
      log.warn({ signal: 'SIGQUIT', phase }, `SIGQUIT while ${phase}: ignored`)
      return
    }
    phase = 'handing-over'
    log.info(
      { signal: 'SIGQUIT', socket: upgradeSocket },
      `SIGQUIT: handing the listeners over through ${upgradeSocket}`,
    )
    handOver(host, log).then((result) => {
      if (result.ok) handedOver = true
      if (phase !== 'handing-over') return // a stop signal came meanwhile and is draining
      if (!result.ok) {
        // the host crashed while this handover ran: it was the way out, and it failed
        if (hostCrash) return giveUp(`the handover on SIGQUIT failed: ${result.error.message}`)
        phase = 'serving'
        log.warn({ code: result.error.code }, `handover failed (${result.error.code}): still serving`)
        return
      }
      phase = 'stopping'
      log.info(
        { successor: result.successor, graceMs: shutdownGraceMs },
        `handed over to pid ${result.successor}: draining (grace ${shutdownGraceMs} ms)`,
      )
      drain(shutdownGraceMs, result.successor)
    })
  }

  // ---- the host's own crash: an uncaught error no module code is found in ----
  const crash = host.options.hostCrash
  const chain = new CrashChain(crash.maxUpgrades, crash.windowMs)
  /** Set by the first host error: later ones are counted, and never start a second successor. */
  let hostCrash: { more: number; successor?: number } | undefined

  /** The process state is suspect: no graceful close, only the pidfile (while it names us). */
  const exitNow = (code: number): never => {
    if (!handedOver) releaseFiles()
    process.exit(code)
  }

  const giveUp = (reason: string): never => {
    const successor = hostCrash?.successor
    // a successor started for this replacement that did not take over must not stay behind
    if (successor !== undefined && !handedOver) killGroup(successor)
    reportFatal(log, nyalaError('NYALA_ERR_HOST_CRASH_REPLACE', { crashedPid: process.pid, reason }))
    return exitNow(exitCodes.failure)
  }

  const onHostError = (err: unknown, origin: CrashOrigin) => {
    if (hostCrash) {
      hostCrash.more++
      if (hostCrash.more <= maxLoggedHostErrors) {
        log.error(
          { code: 'NYALA_ERR_HOST_CRASHED', origin, stack: stackText(err), action: 'none' },
          `${origin} outside any module again while ${phase}: no second successor`,
        )
      } else if (hostCrash.more === maxLoggedHostErrors + 1) {
        log.error({ origin }, `more host errors while ${phase}: counted, not logged`)
      }
      return
    }
    hostCrash = { more: 0 }
    const decision = decideHostCrash({
      action: crash.action,
      canStartSuccessor: mode.successor !== undefined,
      phase,
      admit: () => chain.admit(),
    })
    const why = decision.action === 'exit' ? decision.why : undefined
    const error = nyalaError('NYALA_ERR_HOST_CRASHED', { origin, reason: reasonOf(err) })
    log.fatal(
      { ...error.toJSON(), stack: stackText(err), action: decision.action, ...(why ? { why } : {}) },
      `${error.message}; action: ${decision.action}${why ? ` (${why})` : ''}`,
    )
    if (decision.action === 'exit') {
      if (decision.loop) {
        const loop = nyalaError('NYALA_ERR_HOST_CRASH_LOOP', {
          upgrades: chain.count(),
          window: crash.windowMs / 1000,
          max: crash.maxUpgrades,
        })
        reportFatal(log, loop)
      } else process.stderr.write(`nyala: ${origin}: ${stackText(err)}\n`)
      return exitNow(exitCodes.failure)
    }
    if (decision.action !== 'upgrade' || !mode.successor) return
    phase = 'handing-over'
    // the deploy paths are the successor's now: a reload committed here while it loads the
    // bundles would leave the two processes serving different code (it picks up what arrives)
    void host.reloader.close().catch(() => {})
    const bound = crash.upgradeTimeoutMs + handoverBoundMs
    // the last word on "never hang": a promise the crash left unsettled cannot keep this process
    const safety = setTimeout(() => giveUp(`no successor served within ${bound} ms`), bound)
    replaceProcess(host, log, mode.successor, {
      env: decision.env,
      timeoutMs: crash.upgradeTimeoutMs,
      onStarted: (pid) => {
        if (hostCrash) hostCrash.successor = pid
      },
      cancelled: () => phase !== 'handing-over',
    }).then(
      (result) => {
        clearTimeout(safety)
        if (result.ok) handedOver = true
        if (phase !== 'handing-over') return // a stop signal came meanwhile and is draining
        if (!result.ok) return giveUp(result.reason)
        phase = 'stopping'
        log.info(
          { successor: result.successor, graceMs: shutdownGraceMs },
          `host crash: handed over to pid ${result.successor}: draining (grace ${shutdownGraceMs} ms), then exiting 0`,
        )
        // module stop hooks in a process whose state is suspect: bounded like everything here
        hardStop = setTimeout(
          () => {
            log.warn(
              { successor: result.successor },
              'host crash: the drain did not end in time: exiting now',
            )
            finish(exitCodes.ok)
          },
          shutdownGraceMs + host.options.moduleStopTimeoutMs + pidfileWaitMs,
        )
        drain(shutdownGraceMs, result.successor)
      },
      (e: unknown) => giveUp(reasonOf(e)),
    )
  }

  const hangup = () => {
    if (phase === 'serving' || phase === 'handing-over') mode.onHangup?.()
    else log.warn({ signal: 'SIGHUP', phase }, `SIGHUP while ${phase}: ignored`)
  }
  const onTerm = () => stop({ signal: 'SIGTERM', graceMs: shutdownGraceMs, fast: false })
  const onInt = () => stop({ signal: 'SIGINT', graceMs: shutdownFastMs, fast: true })
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', onInt)
  process.on('SIGQUIT', quit)
  process.on('SIGHUP', hangup)
  // a module's crash is its supervisor's; the host's own error replaces the process
  // (host.crash.action=upgrade) or ends it, as Node would, but through the log
  const removeCrashHandlers = installCrashHandlers(host.supervisor, onHostError)
  try {
    try {
      if (mode.upgrade) {
        await host.prepare()
        const from = await takeOver(host, log, {
          signal: startup.signal,
          onWaiting: (socket) => readiness.report({ state: 'waiting', pid: process.pid, socket }),
        })
        log.info({ from }, `took over the listeners of pid ${from}`)
      } else {
        checkPidfileFree(pidFile, log)
        await host.start()
      }
    } catch (err) {
      readiness.report({
        state: 'failed',
        pid: process.pid,
        code: isNyalaError(err) ? err.code : 'ERROR',
        message: reasonOf(err),
      })
      await host.close(0).catch(() => {})
      // a start that failed after the admin API listened (the HTTP port taken) leaves no address
      host.forgetAdminUrl()
      if (pendingStop && err === startup.signal.reason) {
        log.info({ signal: pendingStop.signal }, 'stopped before serving')
        return exitCodes.ok
      }
      return reportFatal(log, err)
    }
    try {
      writePidfile(pidFile)
    } catch (err) {
      // serving already (a successor: the old one is draining); stopping now would be the outage
      if (isNyalaError(err)) log.error(err.toJSON(), err.message)
    }
    const address = host.address
    readiness.report({
      state: 'serving',
      pid: process.pid,
      url: address ? httpUrlOf(address) : '',
    })
    phase = 'serving'
    if (pendingStop) stop(pendingStop)
    return await exited
  } finally {
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    process.off('SIGQUIT', quit)
    process.off('SIGHUP', hangup)
    removeCrashHandlers()
  }
}

function stackText(err: unknown): string {
  const stack = (err as { stack?: unknown } | null)?.stack
  return typeof stack === 'string' ? stack : String(err)
}

/** Resolves once the pidfile names `pid`, or after `pidfileWaitMs` with a warning. */
async function pidfileNames(file: string, pid: number, log: Logger): Promise<void> {
  const deadline = Date.now() + pidfileWaitMs
  while (readPid(file) !== pid) {
    if (Date.now() >= deadline) {
      log.warn({ file, successor: pid }, `the pidfile ${file} does not name the successor pid ${pid}`)
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

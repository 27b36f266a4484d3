import { exitCodes, reportFatal } from '../cli/common.js'
import { isNyalaError, reasonOf } from '../errors.js'
import type { NyalaHost } from '../host.js'
import { httpUrlOf } from '../http/listener.js'
import type { Logger } from '../logger.js'
import { installCrashHandlers } from '../supervise/process-handlers.js'
import { handOver } from './hand-over.js'
import { checkPidfileFree, releasePidfile, writePidfile } from './pidfile.js'
import { Readiness } from './readiness.js'
import { takeOver } from './take-over.js'

export interface ProcessMode {
  /** Start as the successor of a running instance (`--upgrade`). */
  readonly upgrade: boolean
  /** SIGHUP while serving (module rescan); ignored before the instance serves. */
  readonly onHangup?: () => void
}

type Phase = 'starting' | 'serving' | 'handing-over' | 'stopping'
type StopRequest = { signal: NodeJS.Signals; graceMs: number; fast: boolean }

/**
 * A whole `nyala start` process around the host: the pidfile, readiness for
 * `--daemonize`, the successor's wait (`--upgrade`), and the signals: SIGQUIT hands
 * the listeners to a successor, SIGTERM stops gracefully, SIGINT stops within
 * `shutdown.fast.timeout`, SIGHUP calls `mode.onHangup`. Resolves with the exit code.
 */
export async function runProcess(host: NyalaHost, log: Logger, mode: ProcessMode): Promise<number> {
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

  const finish = (code: number) => {
    clearTimeout(hardStop)
    // after a handover the pidfile names the successor, or is about to: never remove it then
    if (!handedOver) releasePidfile(pidFile)
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

  const drain = (graceMs: number) =>
    host.close(graceMs).then(
      () => {
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
        phase = 'serving'
        log.warn({ code: result.error.code }, `handover failed (${result.error.code}): still serving`)
        return
      }
      phase = 'stopping'
      log.info(
        { successor: result.successor, graceMs: shutdownGraceMs },
        `handed over to pid ${result.successor}: draining (grace ${shutdownGraceMs} ms)`,
      )
      drain(shutdownGraceMs)
    })
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
  // a module's crash is its supervisor's; the host's own error still ends the process, as
  // Node would, but through the log
  const removeCrashHandlers = installCrashHandlers(host.supervisor, (err, origin) => {
    log.fatal({ err, origin }, `${origin} outside any module: exiting`)
    process.stderr.write(`nyala: ${origin}: ${(err as Error | undefined)?.stack ?? String(err)}\n`)
    if (!handedOver) releasePidfile(pidFile)
    process.exit(exitCodes.failure)
  })
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

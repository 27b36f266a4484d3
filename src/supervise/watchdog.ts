import { Worker } from 'node:worker_threads'
import type { HostOptions } from '../config/host-options.js'
import { reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { readNames, runningBuffer, runningOrigin, runningSlots, slot } from '../runtime/running-code.js'

export type WatchdogSettings = HostOptions['watchdog'] & WatchdogOutput

interface WatchdogOutput {
  /** How the host's log lines are written: the worker writes its own the same way. */
  readonly format: 'json' | 'pretty'
  /** The process's exit code when `action` is `exit`. */
  readonly exitCode: number
  /** The native addon that can `_exit` from another thread; without it the worker uses SIGKILL. */
  readonly addonFile: string
}

/** What the worker is started with (src/supervise/watchdog-worker.ts). */
export interface WatchdogData {
  readonly buffer: SharedArrayBuffer
  readonly origin: number
  readonly stallMs: number
  readonly checkMs: number
  readonly action: 'log' | 'exit'
  readonly exitCode: number
  readonly format: 'json' | 'pretty'
  /** pino's number of the host's level: records below it are not written. */
  readonly levelValue: number
  readonly addonFile: string
}

export interface Watchdog {
  /** Stops the heartbeat and the worker. */
  stop(): Promise<void>
}

const off: Watchdog = { stop: async () => {} }

/**
 * How often the loop beats and the worker looks: an eighth of the stall time,
 * from 10 to 250 ms. A stall is seen between `stallMs` and `stallMs` plus two
 * of these; a timer every 250 ms costs the loop nothing measurable.
 */
export function beatIntervalOf(stallMs: number): number {
  return Math.max(10, Math.min(250, Math.floor(stallMs / 8)))
}

/**
 * Starts the watchdog: a timer of the main thread writes a heartbeat into
 * shared memory each time the event loop turns to it, and a worker thread,
 * whose own loop is not the one stuck, looks at it. When the beat is older
 * than `watchdog.stall.ms`, the worker logs which module and route the main
 * thread runs (src/runtime/running-code.ts), and when it beats again, how
 * long it stalled; with `watchdog.action=exit` it ends the process after the
 * log line. Neither the timer nor the worker keeps the process alive.
 */
export function startWatchdog(settings: WatchdogSettings, log: Logger): Watchdog {
  if (settings.stallMs === 0) return off
  const checkMs = beatIntervalOf(settings.stallMs)
  const beat = () => {
    runningSlots[slot.beat] = (Date.now() - runningOrigin) | 0
    // a timer runs from the loop, never inside marked code: a mark still set is stale
    // (a dispatch whose routing threw), and must not name a module in a later stall
    runningSlots[slot.code] = 0
    runningSlots[slot.route] = 0
  }
  beat()
  const timer = setInterval(beat, checkMs).unref()
  const data: WatchdogData = {
    buffer: runningBuffer,
    origin: runningOrigin,
    stallMs: settings.stallMs,
    checkMs,
    action: settings.action,
    exitCode: settings.exitCode,
    format: settings.format,
    levelValue: log.levelVal,
    addonFile: settings.addonFile,
  }
  const worker = new Worker(new URL('./watchdog-worker.js', import.meta.url), {
    workerData: data,
    // it never needs much: a table of names and one log line at a time
    resourceLimits: { maxOldGenerationSizeMb: 32 },
    stdout: false,
    stderr: false,
  })
  worker.unref()
  let stopped = false
  worker.on('error', (err) => {
    // the host serves on without its watchdog rather than stop for it
    log.warn(
      { reason: reasonOf(err) },
      `the watchdog thread failed: ${reasonOf(err)}; stalls are not reported`,
    )
  })
  worker.on('exit', () => {
    if (!stopped) clearInterval(timer)
  })
  readNames((change) => worker.postMessage(change))
  log.debug({ stallMs: settings.stallMs, action: settings.action, checkMs }, 'watchdog started')
  return {
    async stop() {
      stopped = true
      clearInterval(timer)
      readNames(undefined)
      // an unref'd worker's terminate() does not hold the event loop: with nothing else left the
      // process would end inside this await, before the command returns its exit code
      worker.ref()
      await worker.terminate()
    },
  }
}

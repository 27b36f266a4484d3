/**
 * The watchdog's thread (started by src/supervise/watchdog.ts). Its own event
 * loop keeps turning while the main thread's is stuck, so it can look at the
 * heartbeat and the running-code slots in shared memory, and log.
 *
 * It writes its log lines itself, in the host logger's format (a pino JSON
 * record, or the same record made readable), straight to file descriptor 1
 * with a synchronous write: the host's logger cannot, its thread is the one
 * stuck. Lines are whole records written by one write each, as the host's.
 */
import { writeSync } from 'node:fs'
import { createRequire } from 'node:module'
import { parentPort, workerData } from 'node:worker_threads'
import { nyalaError } from '../errors.js'
import { createPrettifier } from '../pretty-log.js'
import { type NameChange, part, partNames, slot } from '../runtime/running-code.js'
import type { WatchdogData } from './watchdog.js'

const data = workerData as WatchdogData
const slots = new Int32Array(data.buffer)

interface CodeName {
  readonly module: string
  readonly generation: number
  readonly routes: number[]
}
const codes = new Map<number, CodeName>()
const routes = new Map<number, string>()

parentPort?.on('message', (change: NameChange) => {
  if (change.kind === 'code')
    codes.set(change.id, { module: change.module, generation: change.generation, routes: [] })
  else if (change.kind === 'route') {
    routes.set(change.id, change.route)
    codes.get(change.code)?.routes.push(change.id)
  } else forget(change.id)
})

/**
 * Names of stopped generations are kept a while, the last 256: the last
 * request may have gone to a generation that stopped since (a reload).
 */
const forgotten: number[] = []
function forget(id: number): void {
  forgotten.push(id)
  if (forgotten.length <= 256) return
  const old = forgotten.shift() as number
  for (const route of codes.get(old)?.routes ?? []) routes.delete(route)
  codes.delete(old)
}

/** What the main thread runs, as log fields and as words for the message. */
interface Running {
  readonly fields: Record<string, string | number>
  readonly text: string
}

function codeName(id: number): { module: string; generation: number } {
  return codes.get(id) ?? { module: `unknown (code id ${id})`, generation: 0 }
}

function routeName(id: number): string {
  if (id < 0) return partNames[id] ?? `unknown (${id})`
  return routes.get(id) ?? `unknown (route id ${id})`
}

/** Reads the slots: the marked code running now, or else the last request dispatched. */
function running(): Running {
  const code = Atomics.load(slots, slot.code)
  const route = Atomics.load(slots, slot.route)
  if (code !== 0) {
    const { module, generation } = codeName(code)
    const what =
      route > 0
        ? `route ${routeName(route)}`
        : route < 0
          ? routeName(route)
          : 'a request, before its route handler'
    return {
      fields: {
        module,
        generation,
        ...(route > 0 ? { route: routeName(route) } : {}),
        within: kindOf(route),
      },
      text: `module "${module}" generation ${generation} is running ${what}`,
    }
  }
  const lastCode = Atomics.load(slots, slot.lastCode)
  const none =
    'no module code entered through the host is running (the host itself, or module code resumed from a promise, a plain timer or an event)'
  if (lastCode === 0) return { fields: { within: 'unknown' }, text: `${none}; no request was dispatched yet` }
  const last = codeName(lastCode)
  const lastRoute = Atomics.load(slots, slot.lastRoute)
  const lastRouteName = lastRoute === 0 ? '' : routeName(lastRoute)
  return {
    fields: {
      within: 'unknown',
      lastModule: last.module,
      lastGeneration: last.generation,
      ...(lastRouteName === '' ? {} : { lastRoute: lastRouteName }),
    },
    text: `${none}; the last request went to module "${last.module}" generation ${last.generation}${
      lastRouteName === '' ? '' : `, route ${lastRouteName}`
    }`,
  }
}

/** `route` for a route handler, `request` before it, else the name of the `part` (`timer`, `register`...). */
function kindOf(route: number): string {
  if (route > 0) return 'route'
  if (route === 0) return 'request'
  return Object.entries(part).find(([, value]) => value === route)?.[0] ?? 'unknown'
}

const prettify = data.format === 'pretty' ? createPrettifier() : undefined

/** One record, as the host's pino logger writes it: level, time, pid, the fields, msg. */
function write(level: number, fields: Record<string, unknown>, msg: string): void {
  if (level < data.levelValue) return
  const json = JSON.stringify({ level, time: new Date().toISOString(), pid: process.pid, ...fields, msg })
  writeAll(prettify ? prettify(json) : `${json}\n`)
}

/** A synchronous write of the whole line, waiting out a full pipe (EAGAIN) for up to 2 s. */
function writeAll(text: string): void {
  let bytes = Buffer.from(text)
  const pause = new Int32Array(new SharedArrayBuffer(4))
  for (let waited = 0; bytes.length > 0; ) {
    try {
      bytes = bytes.subarray(writeSync(1, bytes))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || waited >= 2000) return
      Atomics.wait(pause, 0, 0, 10)
      waited += 10
    }
  }
}

/** Ends the whole process with `code`: process.exit in a worker would end this thread only. */
function exitProcess(code: number): void {
  try {
    const addon = createRequire(import.meta.url)(data.addonFile) as { exitNow(code: number): never }
    addon.exitNow(code)
  } catch {
    // without the addon (not built): a signal ends the process, exit status 128 + 9
    process.kill(process.pid, 'SIGKILL')
  }
}

let stalled: { readonly beat: number; readonly fields: Record<string, string | number> } | undefined

function check(): void {
  const beat = Atomics.load(slots, slot.beat)
  if (stalled !== undefined) {
    if (beat === stalled.beat) return
    const ms = (beat - stalled.beat) | 0
    write(
      40,
      { ...stalled.fields, stalledMs: ms },
      `the event loop turned again after about ${ms} ms (watchdog.stall.ms=${data.stallMs})`,
    )
    stalled = undefined
    return
  }
  const now = (Date.now() - data.origin) | 0
  const ms = (now - beat) | 0
  if (ms < data.stallMs) return
  const what = running()
  const error = nyalaError('NYALA_ERR_EVENT_LOOP_STALL', {
    ms,
    limit: data.stallMs,
    running: what.text,
    action: data.action,
  })
  stalled = { beat, fields: what.fields }
  write(
    data.action === 'exit' ? 60 : 50,
    { ...error.toJSON(), ...what.fields },
    data.action === 'exit' ? `${error.message}: exiting with code ${data.exitCode}` : error.message,
  )
  if (data.action === 'exit') exitProcess(data.exitCode)
}

setInterval(check, data.checkMs)

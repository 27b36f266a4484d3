import { closeSync, writeSync } from 'node:fs'

/** The environment variable naming the pipe a daemonized child reports readiness on. */
export const readyFdVariable = 'NYALA_READY_FD'

export type ReadyReport =
  | { state: 'serving'; pid: number; url: string }
  | { state: 'waiting'; pid: number; socket: string }
  | { state: 'failed'; pid: number; code: string; message: string }

/**
 * The daemonized child's end of the readiness pipe (see daemonize.ts). Read once
 * and removed from the environment, so module code and its child processes never
 * see it. Without a parent waiting, reports go nowhere.
 */
export class Readiness {
  #fd: number | undefined

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const raw = env[readyFdVariable]
    delete env[readyFdVariable]
    const fd = Number(raw)
    this.#fd = raw !== undefined && Number.isInteger(fd) && fd > 2 ? fd : undefined
  }

  /** Sends one report; `waiting` keeps the pipe open for the final `serving` or `failed`. */
  report(report: ReadyReport): void {
    if (this.#fd === undefined) return
    try {
      writeSync(this.#fd, `${JSON.stringify(report)}\n`)
    } catch {
      // the parent is gone: nobody to tell
    }
    if (report.state !== 'waiting') this.#close()
  }

  #close(): void {
    if (this.#fd === undefined) return
    try {
      closeSync(this.#fd)
    } catch {
      // already closed
    }
    this.#fd = undefined
  }
}

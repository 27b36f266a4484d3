import { type ChildProcess, fork } from 'node:child_process'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { type NyalaError, nyalaError } from '../errors.js'
import type { Logger } from '../logger.js'
import { IntensityWindow } from '../supervise/intensity.js'
import { ControlPipe } from './control-pipe.js'
import { type FromWorker, type ToWorker, workerEnv } from './protocol.js'

export type SlotState = 'starting' | 'serving' | 'stalled' | 'stopping' | 'failed' | 'exited'

/** How to start a worker: this CLI with the supervisor's own arguments. */
export interface WorkerCommand {
  readonly cli: string
  readonly args: readonly string[]
}

type Waiter = { resolve: (m: FromWorker) => void; reject: (e: NyalaError) => void; timer: NodeJS.Timeout }

/**
 * One worker slot: the process serving in it now, the replies it owes, and
 * the count of its replacements (restart intensity). A replacement takes the
 * same slot number, so logs and `GET /workers` keep naming it alike.
 */
export class WorkerSlot {
  child: ChildProcess | undefined
  state: SlotState = 'starting'
  restarts = 0
  /** Connections handed to this process, and its last report of them (see `openConnections`). */
  handed = 0
  #receivedCount = 0
  #open = 0
  /** When it last answered a ping (performance.now()). */
  lastPong = 0
  readonly intensity: IntensityWindow
  /** The generation this worker serves of each running module, as it last reported. */
  generations = new Map<string, number>()
  readonly #waiters = new Map<string, Waiter>()
  #control: ControlPipe<FromWorker, ToWorker> | undefined
  /**
   * Connections handed to this process that it has not reported receiving yet, by `seq`. They
   * go with `keepOpen`: the supervisor's own descriptor of each stays open until the process
   * reports it (`conns`), then is closed. Node sends one descriptor at a time and queues the
   * next ones until the process acknowledges; when it dies first (kill -9 under load), Node
   * neither sends nor closes the queued ones, and they hung until their clients gave up. When
   * the process ends, the ones still queued (`written` false: never left the supervisor) go to
   * `rehand` (another worker); the ones written to it are closed, since it may have taken them
   * and read their request (their requests die with it, as the ones it was answering do).
   */
  #unreceived = new Map<number, { socket: Socket; written: boolean }>()
  #seq = 0
  /** Called once per process the slot ran, when it has exited. */
  onExit: (code: number | null, signal: NodeJS.Signals | null, child: ChildProcess) => void = () => {}
  /** Takes a connection this slot's process never received (it ended first): see `#unreceived`. */
  rehand: (socket: Socket) => void = (socket) => socket.destroy()

  constructor(
    readonly id: number,
    private readonly command: WorkerCommand,
    private readonly log: Logger,
    maxRestarts: number,
    windowMs: number,
  ) {
    this.intensity = new IntensityWindow(maxRestarts, windowMs)
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  /** Forks the worker process; its stdout and stderr are the supervisor's, so its records join the log. */
  spawn(generations: ReadonlyMap<string, number>): ChildProcess {
    const child = fork(this.command.cli, [...this.command.args], {
      env: {
        ...process.env,
        [workerEnv.id]: String(this.id),
        [workerEnv.generations]: JSON.stringify(Object.fromEntries(generations)),
      },
      serialization: 'advanced',
      // fd 4: the control pipe (control-pipe.ts)
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
    })
    this.child = child
    this.handed = 0
    this.#receivedCount = 0
    this.#open = 0
    // this process's own: the one before may still be ending, with its own left to hand on
    const unreceived = new Map<number, { socket: Socket; written: boolean }>()
    this.#unreceived = unreceived
    const onMessage = (m: FromWorker) => {
      // the process has its own descriptor of these now: the supervisor's copy goes
      if (m.t === 'conns') {
        for (const seq of m.got) {
          unreceived.get(seq)?.socket.destroy()
          unreceived.delete(seq)
        }
      }
      this.#received(child, m)
    }
    this.#control = new ControlPipe<FromWorker, ToWorker>(child.stdio[4] as Duplex, onMessage)
    this.state = 'starting'
    this.lastPong = performance.now()
    child.on('message', onMessage)
    // its channel closed (it was killed, it exited): out of the rotation before its exit is reported
    child.once('disconnect', () => {
      if (child === this.child && this.state === 'serving') this.state = 'exited'
    })
    child.on('error', (err) =>
      this.log.warn({ worker: this.id, reason: err.message }, 'worker channel error'),
    )
    // on 'close', not 'exit': every report it sent (its control pipe) has been read by then
    child.once('close', () => {
      const left = [...unreceived.values()].filter((e) => !e.socket.destroyed)
      unreceived.clear()
      const queued = left.filter((e) => !e.written)
      for (const e of left) if (e.written) e.socket.destroy()
      if (queued.length === 0) return
      this.log.warn(
        { worker: this.id, connections: queued.length },
        `worker ${this.id} ended before taking ${queued.length} connection(s) queued for it: they go to another worker`,
      )
      for (const e of queued) this.rehand(e.socket)
    })
    child.once('exit', (code, signal) => {
      if (child === this.child) {
        this.state = 'exited'
        const reason = signal ?? `exit code ${code}`
        for (const [key, waiter] of this.#waiters) {
          clearTimeout(waiter.timer)
          waiter.reject(
            nyalaError('NYALA_ERR_WORKER_EXITED', {
              worker: this.id,
              pid: child.pid ?? 0,
              reason,
              during: '',
            }),
          )
          this.#waiters.delete(key)
        }
      }
      this.onExit(code, signal, child)
    })
    return child
  }

  #received(child: ChildProcess, m: FromWorker): void {
    if (child !== this.child) return
    if (m.t === 'pong') this.lastPong = performance.now()
    if (m.t === 'conns') {
      this.#receivedCount = m.received
      this.#open = m.open
      return
    }
    if (m.t === 'generations') {
      for (const [name, n] of Object.entries(m.generations)) this.generations.set(name, n)
      return
    }
    const key = m.t === 'loaded' ? 'loaded:0' : `${m.t}:${m.id}`
    const waiter = this.#waiters.get(key)
    if (!waiter) return
    this.#waiters.delete(key)
    clearTimeout(waiter.timer)
    waiter.resolve(m)
  }

  /**
   * Its open connections as last reported, plus those handed since that it had not
   * received then: exact but for closes since its last report (at most 25 ms old).
   */
  get openConnections(): number {
    return this.#open + this.handed - this.#receivedCount
  }

  /**
   * Sends a message (on the control pipe for COMMIT and pings, see
   * control-pipe.ts); false only when the process cannot take it (its channel
   * is closed). Node's own `false` means a backlog, not a lost message: the
   * message is queued and goes out.
   */
  send(message: ToWorker): boolean {
    const child = this.child
    if (!child?.connected) return false
    if (message.t === 'commit' || message.t === 'ping') return this.#control?.send(message) ?? false
    try {
      child.send(message)
      return true
    } catch {
      return false
    }
  }

  /**
   * Hands an accepted connection to this process; false when it cannot take it (its channel is
   * closed). `failed` gets the connection back if sending it fails later.
   */
  handOver(socket: Socket, failed: (socket: Socket) => void): boolean {
    const child = this.child
    if (!child?.connected) return false
    const seq = ++this.#seq
    const unreceived = this.#unreceived
    const entry = { socket, written: false }
    unreceived.set(seq, entry)
    const takeBack = () => unreceived.delete(seq)
    try {
      // called once the descriptor is written to the process, or failed to be: not while queued
      child.send({ t: 'conn', seq }, socket, { keepOpen: true }, (err) => {
        if (!err) entry.written = true
        else if (takeBack()) failed(socket)
      })
      return true
    } catch {
      takeBack()
      return false
    }
  }

  /**
   * Resolves with the reply of type `reply` (same id) once the worker sends it, or rejects
   * with `onTimeout()` after `ms`, or with NYALA_ERR_WORKER_EXITED if the process exits first.
   */
  waitFor(reply: FromWorker['t'], id: number, ms: number, onTimeout: () => NyalaError): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      const key = `${reply}:${id}`
      const timer = setTimeout(() => {
        this.#waiters.delete(key)
        reject(onTimeout())
      }, ms)
      this.#waiters.set(key, { resolve, reject, timer })
    })
  }

  /** Sends `message` and waits for its reply (see `waitFor`). */
  request(
    message: ToWorker,
    reply: FromWorker['t'],
    id: number,
    ms: number,
    onTimeout: () => NyalaError,
  ): Promise<FromWorker> {
    const answer = this.waitFor(reply, id, ms, onTimeout)
    if (!this.send(message)) {
      const key = `${reply}:${id}`
      const waiter = this.#waiters.get(key)
      this.#waiters.delete(key)
      if (waiter) clearTimeout(waiter.timer)
      return Promise.reject(
        nyalaError('NYALA_ERR_WORKER_EXITED', {
          worker: this.id,
          pid: this.pid ?? 0,
          reason: 'its channel is closed',
          during: '',
        }),
      )
    }
    return answer
  }
}

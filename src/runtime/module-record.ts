import type { Bundle } from '../bundle/open-bundle.js'
import type { NyalaError } from '../errors.js'
import type { Generation } from './generation.js'
import { RequestStats } from './request-stats.js'

export type ModuleState = 'running' | 'failed' | 'stopped'

/** What the host knows of one module, across its generations. */
export interface ModuleRecord {
  readonly name: string
  /** The bundle file or directory (the first one, for duplicates). */
  file: string
  /** The last bundle that opened cleanly, if any. */
  bundle: Bundle | undefined
  state: ModuleState
  /** The generation serving requests, when running. */
  generation: Generation | undefined
  /** Generations built so far; the next one gets this plus one. */
  generations: number
  /** Why the module is not running. */
  error: NyalaError | undefined
  /** The last failed reload, kept until the next successful one. */
  reloadError: { code: string; message: string; at: string } | undefined
  /** The last successful reload: when, and how long it took from trigger to swap. */
  lastReload: { at: string; ms: number } | undefined
  /** Requests served by generations that have stopped (metrics add the live one). */
  servedBefore: number
  /** Crashes of the module's code (uncaught exceptions, unhandled rejections), every generation. */
  crashes: number
  /** Requests of the last minute, every generation (the operator console's figures). */
  readonly stats: RequestStats
}

/** A record for a module the host has not seen before. */
export function newRecord(name: string, file: string): ModuleRecord {
  return {
    name,
    file,
    bundle: undefined,
    state: 'stopped',
    generation: undefined,
    generations: 0,
    error: undefined,
    reloadError: undefined,
    lastReload: undefined,
    servedBefore: 0,
    crashes: 0,
    stats: new RequestStats(),
  }
}

/**
 * A module's requests in flight now and served so far (every generation): the part of its view
 * that changes with every request (GET /stats carries it between full updates of the console).
 */
export function requestCounts(record: ModuleRecord): { inflight: number; served: number } {
  const gen = record.generation
  return { inflight: gen?.inflight ?? 0, served: record.servedBefore + (gen?.served ?? 0) }
}

/** A plain view of a record for logs, `nyala status` and the admin API. */
export function describeRecord(record: ModuleRecord): Record<string, unknown> {
  const manifest = record.bundle?.manifest
  const gen = record.generation
  return {
    name: record.name,
    version: manifest?.version ?? null,
    state: record.state,
    generation: gen?.number ?? null,
    prefix: manifest?.prefix ?? null,
    dependsOn: manifest?.dependsOn ?? [],
    optionalDependsOn: manifest?.optionalDependsOn ?? [],
    reloadable: manifest?.reloadable ?? null,
    bundle: record.file,
    ...requestCounts(record),
    crashes: record.crashes,
    signature: record.bundle?.signature ?? null,
    startedAt: gen ? new Date(gen.startedAt).toISOString() : null,
    error: record.error ? { code: record.error.code, message: record.error.message } : null,
    lastReload: record.lastReload ?? null,
    lastError: record.reloadError ?? null,
  }
}

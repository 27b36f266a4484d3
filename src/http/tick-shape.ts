import { createHook } from 'node:async_hooks'

/** Kept for the life of the process, on purpose: see `keepTickShape`. */
const kept: object[] = []
const noop = (): void => {}

/**
 * Keeps one of Node's own `process.nextTick` queue entries alive for the life
 * of the process, so requests keep taking V8's fast path in `nextTick`.
 *
 * Why: `nextTick` builds each queue entry with an object literal whose first
 * keys are computed symbols, and V8 holds the maps of such a shape only
 * weakly. Between requests no entry is alive, so a full GC can drop those
 * maps; the next entry gets new ones, and after a few GCs the literal's
 * property-definition feedback is megamorphic for good: every later
 * `nextTick` (about nine per HTTP request) then defines its four properties
 * in the V8 runtime. A host with modules, an admin API and a watcher loaded
 * runs full GCs under load that a small bare Fastify app does not, which is
 * why this showed in Nyala only: megamorphic after load in 3 of 4 runs of
 * `nyala start` against 0 of 4 of bare Fastify, and in 2 of 2 of bare Fastify
 * with a `gc()` every 200 ms; monomorphic in every run with one entry kept
 * (`%DebugPrint(process.nextTick)` after 40 000 requests). Under callgrind the
 * megamorphic state cost ~40 % more instructions per request
 * (bench/dispatch-gap.md). A live entry keeps its map and, by back pointers,
 * the whole transition chain alive.
 *
 * It has to be the first entry's map: the maps can be dropped (and the
 * feedback spoiled) by any full GC, also during start-up, so this runs when
 * this file is first imported, which `cli.ts` does before anything else.
 * The entry is taken with an async hook enabled for one `nextTick` call only.
 */
function keepTickShape(): void {
  let entry: object | undefined
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type === 'TickObject') entry ??= resource
    },
  })
  hook.enable()
  try {
    process.nextTick(noop)
  } finally {
    hook.disable()
  }
  if (entry) kept.push(entry)
}

keepTickShape()

// Run with --expose-gc by loader.test.js: builds and stops N generations of one
// module and reports how many were garbage-collected and how the heap moved.
import { pino } from 'pino'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { Generation } from '../dist/runtime/generation.js'

const [bundleFile, countArg] = process.argv.slice(2)
const count = Number(countArg)
const bundle = await openBundle(bundleFile)
const log = pino({ level: 'silent' })
let collected = 0
const registry = new FinalizationRegistry(() => collected++)

const settle = async () => {
  for (let i = 0; i < 10; i++) {
    globalThis.gc()
    await new Promise((r) => setImmediate(r))
  }
}

await settle()
const used = () => {
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}
const heapBefore = used()
let previous
for (let n = 1; n <= count; n++) {
  const generation = new Generation({
    bundle,
    generation: n,
    config: {},
    log,
    previous,
    lookup: () => undefined,
    startTimeoutMs: 5000,
    stopTimeoutMs: 5000,
    logRequests: false,
  })
  await generation.start()
  registry.register(generation, n)
  registry.register(generation.provided, n)
  previous = await generation.stop()
}
previous = undefined
await settle()
const heapAfter = used()
process.stdout.write(`${JSON.stringify({ created: count * 2, collected, heapBefore, heapAfter })}\n`)

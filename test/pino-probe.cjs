// Preloaded (node --require) by log-format.test.js into a real host: counts the pino
// instances the process makes and says whether pino-pretty was loaded, on stderr at exit.
// The host imports `{ pino }` from pino's CommonJS exports, read when first imported, so
// replacing the export before then counts every call.
const { sep } = require('node:path')
const exported = require(require.resolve('pino', { paths: [__dirname] }))
const original = exported.pino
let instances = 0
const counting = Object.assign(function pino(...args) {
  instances++
  return original.apply(this, args)
}, original)
exported.pino = counting
exported.default = counting
process.on('exit', () => {
  const pretty = Object.keys(require.cache).some((file) => file.includes(`${sep}pino-pretty${sep}`))
  process.stderr.write(`pino-probe: instances=${instances} pino-pretty=${pretty}\n`)
})

// Packs every example module into modules/ with the project's own packer, for `npm start`.
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { packDirectory } from '../dist/bundle/pack.js'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const examples = path.join(root, 'examples')
for (const name of readdirSync(examples).sort()) {
  const out = path.join(root, 'modules', `${name}.zip`)
  await packDirectory(path.join(examples, name), { out })
  console.log(`packed examples/${name} -> modules/${name}.zip`)
}

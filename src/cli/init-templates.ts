/** The files `nyala init` writes, by path, for a module called `name`. */
export interface ScaffoldOptions {
  readonly name: string
  readonly typescript: boolean
  /** package.json ranges: the host's own Fastify, TypeScript and @types/node, and how to install nyala. */
  readonly versions: {
    readonly fastify: string
    readonly typescript: string
    readonly typesNode: string
    readonly nyala: string
  }
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

export function scaffold(o: ScaffoldOptions): Record<string, string> {
  const main = o.typescript ? 'index.ts' : 'index.js'
  const files: Record<string, string> = {
    'module.properties': manifest(o.name, main),
    'package.json': packageJson(o),
    '.gitignore': 'node_modules/\ndist/\n',
    // the bundle is written into dist/: never pack an old bundle into the next one
    '.nyalaignore': 'dist/\n',
    'README.md': readme(o),
  }
  if (o.typescript) {
    files['index.ts'] = tsMain
    files['test/register.test.ts'] = tsTest(o.name)
    files['tsconfig.json'] = json({
      compilerOptions: {
        target: 'ES2023',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2023'],
        types: ['node'],
        strict: true,
        noEmit: true,
        // nyala pack (and Node's type stripping for the tests) take .ts as it is: no build step
        allowImportingTsExtensions: true,
        verbatimModuleSyntax: true,
        erasableSyntaxOnly: true,
        skipLibCheck: true,
      },
      include: ['*.ts', 'test/**/*.ts'],
    })
  } else {
    files['index.js'] = jsMain
    files['test/register.test.js'] = jsTest(o.name)
  }
  return files
}

function manifest(name: string, main: string): string {
  return `# ${name}: a Nyala module (see "Writing a module" in Nyala's README)
version=0.1.0
main=${main}
# URL prefix, default /${name}
# prefix=/${name}
# modules whose ctx.provide this one reads with ctx.use
# depends-on=
# false: never hot-reloaded
# reloadable=true
`
}

function packageJson(o: ScaffoldOptions): string {
  const test = o.typescript ? 'node --test "test/**/*.test.ts"' : 'node --test'
  return json({
    name: o.name.toLowerCase(),
    version: '0.1.0',
    private: true,
    // CommonJS runs from memory today; ES modules and TypeScript are transformed by the host's loader
    type: o.typescript ? 'module' : 'commonjs',
    main: o.typescript ? 'index.ts' : 'index.js',
    scripts: {
      test,
      ...(o.typescript ? { typecheck: 'tsc' } : {}),
      pack: `nyala pack . -o dist/${o.name}.zip`,
    },
    // what the module needs at run time goes here: nyala pack puts these in the bundle
    dependencies: {},
    // the host provides Fastify and nyala: never in dependencies
    devDependencies: {
      fastify: o.versions.fastify,
      nyala: o.versions.nyala,
      ...(o.typescript ? { '@types/node': o.versions.typesNode, typescript: o.versions.typescript } : {}),
    },
  })
}

const jsMain = `'use strict'

/** @type {import('nyala').NyalaModule} */
module.exports = {
  async register(app, ctx) {
    app.get('/', async () => ({ module: ctx.name, version: ctx.version, generation: ctx.generation }))
  },
}
`

const tsMain = `import type { NyalaModule } from 'nyala'

export default {
  async register(app, ctx) {
    app.get('/', async () => ({ module: ctx.name, version: ctx.version, generation: ctx.generation }))
  },
} satisfies NyalaModule
`

const jsTest = (name: string) => `'use strict'
const assert = require('node:assert/strict')
const { test } = require('node:test')
const Fastify = require('fastify')
const { createTestContext } = require('nyala')
const mod = require('../index.js')
${testBody(name)}`

const tsTest = (name: string) => `import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { createTestContext } from 'nyala'
import mod from '../index.ts'
${testBody(name)}`

/** The test itself, the same in both languages: only the imports differ. */
const testBody = (name: string) => `
test('GET /${name} answers with the module name and generation', async (t) => {
  const app = Fastify()
  const { ctx, stop } = createTestContext({ name: '${name}', version: '0.1.0' })
  t.after(async () => {
    await stop()
    await app.close()
  })
  // as the host does: the module's register inside a plugin under its prefix
  await app.register(async (scoped) => mod.register(scoped, ctx), { prefix: '/${name}' })
  const res = await app.inject({ url: '/${name}' })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(res.json(), { module: '${name}', version: '0.1.0', generation: 1 })
})
`

function readme(o: ScaffoldOptions): string {
  const check = o.typescript
    ? '\nnpm run typecheck    # tsc against the host\'s types (import type ... from "nyala")\n'
    : '\n'
  const node = o.typescript ? ' (the .ts test runs on Node >= 22.18, which strips types itself)' : ''
  return `# ${o.name}

A Nyala module: \`register(app, ctx)\` in ${o.typescript ? 'index.ts' : 'index.js'} adds routes under the
module's prefix (\`/${o.name}\`).

\`\`\`sh
npm install
npm test             # node:test with Fastify's inject${node}${check}npm run pack         # dist/${o.name}.zip, with the production dependencies
cp dist/${o.name}.zip <nyala root>/staging/   # or: nyala deploy dist/${o.name}.zip
\`\`\`
`
}

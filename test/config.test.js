import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { closest, namesHint } from '../dist/config/closest.js'
import { loadHostOptions } from '../dist/config/host-options.js'
import { configKeys, keySpecs } from '../dist/config/keys.js'
import { parseProperties } from '../dist/config/read-properties.js'
import { makeRoot, projectRoot } from './helpers.js'

async function rootWith(t, text) {
  const root = await makeRoot(t, text)
  return root
}

function throwsCode(fn, code, check = () => {}) {
  assert.throws(fn, (err) => {
    assert.equal(err.code, code)
    check(err)
    return true
  })
}

test('defaults apply when the default configuration file is absent', async (t) => {
  const root = await makeRoot(t, null)
  const { options, configFound, warnings } = loadHostOptions({ root })
  assert.equal(configFound, false)
  assert.equal(warnings.length, 0)
  assert.equal(options.port, 8080)
  assert.equal(options.host, '127.0.0.1')
  assert.equal(options.modulesDir, path.join(root, 'modules'))
  assert.equal(options.bundleMaxBytes, 256 * 1024 * 1024)
  assert.equal(options.moduleStartTimeoutMs, 30_000)
  assert.equal(options.autoReload.stagingDir, path.join(root, 'staging'))
  assert.equal(options.autoReload.touchFile, path.join(root, 'modules', 'touch.txt'))
  assert.equal(options.autoReload.checkIntervalMs, 2000)
  assert.equal(options.autoReload.mode, 'overlap')
  assert.equal(options.process.pidFile, path.join(root, 'run', 'nyala.pid'))
  assert.deepEqual(options.watchdog, { stallMs: 2000, action: 'log' })
})

test('options are deeply frozen', async (t) => {
  const { options } = loadHostOptions({ root: await makeRoot(t) })
  assert.ok(Object.isFrozen(options))
  assert.ok(Object.isFrozen(options.autoReload))
  assert.ok(Object.isFrozen(options.reload.modules))
  assert.throws(() => {
    options.port = 1
  }, TypeError)
})

test('file values are parsed and command-line values win over them', async (t) => {
  const root = await rootWith(
    t,
    'port=9000\nauto.reload.check.interval=0.5\nbundle.max.bytes=2M\nreload.modules=billing, core.*\nauto.reload.monitoring.type=tmpfile, stagingDirectory tmpfile\nuse.touch.file=yes\n',
  )
  const { options } = loadHostOptions({ root, set: { port: '0' } })
  assert.equal(options.port, 0)
  assert.equal(options.autoReload.checkIntervalMs, 500)
  assert.equal(options.bundleMaxBytes, 2 * 1024 * 1024)
  assert.deepEqual(options.reload.modules, ['billing', 'core.*'])
  assert.deepEqual(
    options.autoReload.monitoringTypes,
    ['tmpfile', 'stagingDirectory'],
    'a list, duplicates once',
  )
  assert.equal(options.autoReload.useTouchFile, true)
})

test('a bad value names file, key, value and what was expected', async (t) => {
  for (const [line, key, value] of [
    ['auto.reload.check.interval=fast', 'auto.reload.check.interval', 'fast'],
    ['port=99999', 'port', '99999'],
    ['auto.reload.monitoring.type=sometimes', 'auto.reload.monitoring.type', 'sometimes'],
    ['auto.reload.monitoring.type=tmpfile, staging', 'auto.reload.monitoring.type', 'tmpfile, staging'],
    ['auto.reload.monitoring.type=', 'auto.reload.monitoring.type', ''],
    ['auto.reload.modules=perhaps', 'auto.reload.modules', 'perhaps'],
    ['bundle.max.bytes=lots', 'bundle.max.bytes', 'lots'],
    ['watchdog.stall.ms=50', 'watchdog.stall.ms', '50'],
    ['watchdog.stall.ms=2s', 'watchdog.stall.ms', '2s'],
    ['watchdog.action=restart', 'watchdog.action', 'restart'],
  ]) {
    const root = await rootWith(t, `${line}\n`)
    const file = path.join(root, 'config', 'impala.properties')
    throwsCode(
      () => loadHostOptions({ root }),
      'NYALA_ERR_CONFIG_VALUE',
      (err) => {
        assert.equal(err.details.file, file)
        assert.equal(err.details.key, key)
        assert.equal(err.details.value, value)
        assert.ok(String(err.details.expected).length > 0)
        assert.ok(err.message.includes(file) && err.message.includes(key) && err.message.includes(value))
      },
    )
  }
})

test('a bad command-line value names the flag', async (t) => {
  const root = await makeRoot(t)
  throwsCode(
    () => loadHostOptions({ root, set: { port: 'abc' }, flagNames: { port: '--port' } }),
    'NYALA_ERR_CONFIG_VALUE',
    (err) => {
      assert.equal(err.details.key, '--port')
      assert.equal(err.details.file, 'command line')
    },
  )
})

test('an unknown key is a warning with the closest known key', async (t) => {
  const root = await rootWith(t, 'auto.reload.modulez=true\ncompletely.different.thing=1\n')
  const { warnings } = loadHostOptions({ root })
  assert.equal(warnings.length, 2)
  assert.equal(warnings[0].code, 'NYALA_ERR_CONFIG_UNKNOWN_KEY')
  assert.match(warnings[0].message, /auto\.reload\.modulez.*did you mean "auto\.reload\.modules"/)
  assert.equal(warnings[0].details.hint, 'did you mean "auto.reload.modules"?')
  assert.doesNotMatch(warnings[1].message, /did you mean/)
  assert.match(warnings[1].message, /unknown key "completely\.different\.thing"; it is ignored$/)
})

test('"did you mean": typos of short names and long keys, a swap of two letters as one, never another name', () => {
  const modules = ['solo', 'core', 'hello', 'billing', 'customers']
  assert.equal(closest('sollo', modules), 'solo', 'one letter more')
  assert.equal(closest('hlelo', modules), 'hello', 'two letters swapped: one edit')
  assert.equal(closest('bilng', modules), 'billing', 'two letters missing from seven')
  assert.equal(closest('nope', modules), undefined, 'two edits in four letters are another name')
  assert.equal(closest('quotes', modules), undefined)
  assert.equal(closest('auto.relaod.modules', configKeys), 'auto.reload.modules')
  assert.equal(
    namesHint('nope', modules, '`nyala status`'),
    'there are: billing, core, customers, hello, solo',
  )
  assert.equal(namesHint('nope', [], '`nyala status`'), 'there are none')
})

test('an explicit --config that does not exist stops start-up; a missing root too', async (t) => {
  const root = await makeRoot(t)
  throwsCode(() => loadHostOptions({ root, config: 'nope.properties' }), 'NYALA_ERR_CONFIG_NOT_FOUND')
  throwsCode(() => loadHostOptions({ root: path.join(root, 'absent') }), 'NYALA_ERR_DIRECTORY_NOT_FOUND')
})

test('the shipped impala.properties documents every key with its default', async () => {
  const text = await readFile(path.join(projectRoot, 'config', 'impala.properties'), 'utf8')
  const values = parseProperties(text)
  // the shipped file turns hot reload on over the two production deploy paths (issue 13);
  // every other key is written with its default, and these two name their default in a comment
  const shippedChoices = {
    'auto.reload.modules': 'true',
    'auto.reload.monitoring.type': 'tmpfile, stagingDirectory',
  }
  for (const key of configKeys) {
    assert.ok(values.has(key), `config/impala.properties lacks ${key}`)
    if (key in shippedChoices) {
      assert.equal(values.get(key), shippedChoices[key], `shipped value of ${key}`)
      assert.ok(
        text.includes(`(default: ${keySpecs[key].default})`),
        `the comment of ${key} names its default`,
      )
    } else assert.equal(values.get(key), keySpecs[key].default, `default of ${key}`)
  }
  assert.equal(values.size, configKeys.length, 'no unknown keys in the shipped file')
})

test('the shipped impala.properties loads without warnings', async (t) => {
  const root = await makeRoot(t, null)
  await writeFile(
    path.join(root, 'config', 'impala.properties'),
    await readFile(path.join(projectRoot, 'config', 'impala.properties')),
  )
  const { warnings, configFound } = loadHostOptions({ root })
  assert.equal(configFound, true)
  assert.deepEqual(warnings, [])
})

test('properties: inline comments after whitespace are stripped, values trimmed', () => {
  const v = parseProperties('main=index.js     # default index.js\nurl=http://x/#frag\n')
  assert.equal(v.get('main'), 'index.js')
  assert.equal(v.get('url'), 'http://x/#frag')
})

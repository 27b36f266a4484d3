import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { errorCodes, isNyalaError, NyalaError, nyalaError } from '../dist/errors.js'
import { projectRoot } from './helpers.js'

test('every error code is documented in docs/errors.md', async () => {
  const docs = await readFile(path.join(projectRoot, 'docs', 'errors.md'), 'utf8')
  assert.ok(errorCodes.length > 20)
  const missing = errorCodes.filter((code) => !docs.includes(`\`${code}\``))
  assert.deepEqual(missing, [], `undocumented codes: ${missing.join(', ')}`)
})

test('docs/errors.md lists no code that does not exist', async () => {
  const docs = await readFile(path.join(projectRoot, 'docs', 'errors.md'), 'utf8')
  const listed = new Set(docs.match(/NYALA_ERR_[A-Z_]+/g))
  const stale = [...listed].filter((code) => !errorCodes.includes(code))
  assert.deepEqual(stale, [])
})

test('every code has the NYALA_ERR_ prefix and is unique', () => {
  assert.equal(new Set(errorCodes).size, errorCodes.length)
  for (const code of errorCodes) assert.match(code, /^NYALA_ERR_[A-Z_]+$/)
})

test('an error fills its template from its details and keeps them', () => {
  const err = nyalaError('NYALA_ERR_CONFIG_VALUE', {
    file: 'a.properties',
    key: 'port',
    value: 'x',
    expected: 'a port',
  })
  assert.ok(err instanceof NyalaError)
  assert.equal(err.code, 'NYALA_ERR_CONFIG_VALUE')
  assert.equal(err.message, 'a.properties: key "port" has value "x", expected a port')
  assert.equal(err.details.key, 'port')
  assert.deepEqual(err.toJSON(), {
    code: 'NYALA_ERR_CONFIG_VALUE',
    message: err.message,
    file: 'a.properties',
    key: 'port',
    value: 'x',
    expected: 'a port',
  })
  assert.equal(nyalaError('NYALA_ERR_NO_MODULE', { path: '/x' }).statusCode, 404)
})

test('isNyalaError goes by code, not by class', () => {
  const foreign = Object.assign(new Error('x'), { code: 'NYALA_ERR_NO_MODULE' })
  assert.equal(isNyalaError(foreign), true)
  assert.equal(isNyalaError(Object.assign(new Error('x'), { code: 'ENOENT' })), false)
  assert.equal(isNyalaError('NYALA_ERR_NO_MODULE'), false)
})

// What a native addon's bytes say it was built for: object format, ELF class, byte order,
// machine and Node ABI, against what a process needs; and which `.node` entries are prebuilt
// alternatives checked only when required.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { isPrebuiltAlternative, targetMismatch } from '../dist/loader/addon-target.js'
import { projectRoot } from './helpers.js'

/** An ELF header: class (1: 32-bit, 2: 64-bit), data (1: LSB, 2: MSB), e_machine; then `tail`. */
function elf(bits, little, machine, tail = '') {
  const head = Buffer.alloc(64)
  head.set([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, little ? 1 : 2, 1])
  if (little) head.writeUInt16LE(machine, 18)
  else head.writeUInt16BE(machine, 18)
  return Buffer.concat([head, Buffer.from(tail, 'latin1')])
}

const abi = process.versions.modules

test('an ELF file for linux-x64 with no ABI symbol, or Node-API only, matches linux-x64', () => {
  assert.equal(targetMismatch(elf(64, true, 62), 'linux', 'x64', abi), undefined)
  assert.equal(
    targetMismatch(elf(64, true, 62, '\0napi_register_module_v1\0'), 'linux', 'x64', abi),
    undefined,
  )
  assert.equal(
    targetMismatch(elf(64, true, 62, `\0node_register_module_v${abi}\0`), 'linux', 'x64', abi),
    undefined,
  )
})

test('another machine, word size or byte order is named as found and expected', () => {
  assert.deepEqual(targetMismatch(elf(64, true, 183), 'linux', 'x64', abi), {
    found: 'ELF 64-bit LSB AArch64',
    expected: 'ELF 64-bit LSB x86-64 (linux-x64)',
  })
  assert.equal(targetMismatch(elf(32, true, 3), 'linux', 'x64', abi)?.found, 'ELF 32-bit LSB x86 (ia32)')
  assert.equal(targetMismatch(elf(64, false, 62), 'linux', 'x64', abi)?.found, 'ELF 64-bit MSB x86-64')
  assert.equal(targetMismatch(elf(64, true, 9999), 'linux', 'x64', abi)?.found, 'ELF 64-bit LSB machine 9999')
  assert.deepEqual(targetMismatch(elf(64, true, 183), 'linux', 'arm64', abi), undefined)
})

test('another object format: Mach-O and PE on Linux, ELF on macOS, not native code at all', () => {
  const machO = Buffer.from([0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1])
  assert.equal(targetMismatch(machO, 'linux', 'x64', abi)?.found, 'Mach-O')
  assert.equal(targetMismatch(Buffer.from('MZ\x90\0', 'latin1'), 'linux', 'x64', abi)?.found, 'PE')
  assert.deepEqual(targetMismatch(elf(64, true, 62), 'darwin', 'arm64', abi), {
    found: 'ELF',
    expected: 'Mach-O (darwin-arm64)',
  })
  assert.equal(targetMismatch(machO, 'darwin', 'arm64', abi), undefined)
  assert.match(
    targetMismatch(Buffer.from('not a binary'), 'linux', 'x64', abi)?.found ?? '',
    /no native code/,
  )
})

test('a non-Node-API addon built for another Node ABI is refused by its register symbol', () => {
  const other = String(Number(abi) - 7)
  const found = targetMismatch(elf(64, true, 62, `\0node_register_module_v${other}\0`), 'linux', 'x64', abi)
  assert.equal(found?.found, `Node ABI ${other} (NODE_MODULE_VERSION)`)
  assert.match(found?.expected ?? '', new RegExp(`Node ABI ${abi}`))
})

test("the project's own addon matches this process", async () => {
  const bytes = await readFile(path.join(projectRoot, 'native', 'build', 'Release', 'nyala_fdpass.node'))
  assert.equal(targetMismatch(bytes), undefined)
})

test('prebuilt alternatives are told apart from the addon a package always loads', () => {
  assert.equal(isPrebuiltAlternative('node_modules/x/prebuilds/darwin-arm64/node.napi.node'), true)
  assert.equal(isPrebuiltAlternative('node_modules/x/prebuilds/linux-x64/x.glibc.node'), true)
  assert.equal(isPrebuiltAlternative('node_modules/x/bin/win32-x64-115/x.node'), true)
  assert.equal(isPrebuiltAlternative('node_modules/x/lib/node.abi108.node'), true)
  assert.equal(isPrebuiltAlternative('node_modules/better-sqlite3/build/Release/better_sqlite3.node'), false)
  assert.equal(isPrebuiltAlternative('build/Release/addon.node'), false)
})

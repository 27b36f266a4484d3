import { endianness } from 'node:os'

/** What a native addon's bytes say it was built for, against what this process needs. */
export interface TargetMismatch {
  readonly found: string
  readonly expected: string
}

/** ELF `e_machine` and word size of each `process.arch` Node runs on. */
const elfMachines: Readonly<Record<string, { machine: number; bits: 32 | 64; name: string }>> = {
  x64: { machine: 62, bits: 64, name: 'x86-64' },
  arm64: { machine: 183, bits: 64, name: 'AArch64' },
  ia32: { machine: 3, bits: 32, name: 'x86 (ia32)' },
  arm: { machine: 40, bits: 32, name: 'ARM' },
  ppc64: { machine: 21, bits: 64, name: 'PowerPC64' },
  s390x: { machine: 22, bits: 64, name: 's390x' },
  riscv64: { machine: 243, bits: 64, name: 'RISC-V' },
  loong64: { machine: 258, bits: 64, name: 'LoongArch' },
  mips: { machine: 8, bits: 32, name: 'MIPS' },
  mipsel: { machine: 8, bits: 32, name: 'MIPS' },
}
const machineNames = new Map(Object.values(elfMachines).map((m) => [m.machine, m.name]))

const elfMagic = Buffer.from([0x7f, 0x45, 0x4c, 0x46])
const machOMagics = new Set([0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe, 0xcafebabe])

/** The object format native code has on this platform. */
function expectedFormat(platform: NodeJS.Platform): 'ELF' | 'Mach-O' | 'PE' | undefined {
  if (platform === 'darwin') return 'Mach-O'
  if (platform === 'win32') return 'PE'
  if (platform === 'aix') return undefined // XCOFF: not checked
  return 'ELF'
}

function formatOf(bytes: Buffer): string {
  if (bytes.length >= 4 && bytes.subarray(0, 4).equals(elfMagic)) return 'ELF'
  if (bytes.length >= 4 && machOMagics.has(bytes.readUInt32BE(0))) return 'Mach-O'
  if (bytes.length >= 2 && bytes[0] === 0x4d && bytes[1] === 0x5a) return 'PE'
  return 'no native code (not ELF, Mach-O or PE)'
}

/** The ELF header's word size, byte order and machine, as `file(1)` would say it. */
function describeElf(bits: number, little: boolean, machine: number): string {
  const name = machineNames.get(machine) ?? `machine ${machine}`
  return `ELF ${bits}-bit ${little ? 'LSB' : 'MSB'} ${name}`
}

/**
 * Why the bytes of a `.node` file cannot run in this process, or `undefined`
 * when nothing in them says so. Reads the object format, and for ELF the
 * word size, byte order and machine of the header; then the Node ABI of a
 * non-Node-API addon, from the `node_register_module_v<ABI>` symbol that
 * Node's headers name after NODE_MODULE_VERSION. Addons registering through a
 * static constructor carry no such symbol: their ABI is left to `dlopen`,
 * whose refusal is reported as well (native-addon.ts).
 */
export function targetMismatch(
  bytes: Buffer,
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
  abi: string = process.versions.modules,
): TargetMismatch | undefined {
  const format = expectedFormat(platform)
  if (format === undefined) return undefined
  const found = formatOf(bytes)
  const wanted = elfMachines[arch]
  const little = endianness() === 'LE'
  if (found !== format) {
    const expected = format === 'ELF' && wanted ? describeElf(wanted.bits, little, wanted.machine) : format
    return { found, expected: `${expected} (${platform}-${arch})` }
  }
  if (format === 'ELF' && wanted) {
    if (bytes.length < 20) return { found: 'a truncated ELF header', expected: `${platform}-${arch}` }
    const bits = bytes[4] === 2 ? 64 : 32
    const isLittle = bytes[5] !== 2
    const machine = isLittle ? bytes.readUInt16LE(18) : bytes.readUInt16BE(18)
    if (bits !== wanted.bits || isLittle !== little || machine !== wanted.machine) {
      return {
        found: describeElf(bits, isLittle, machine),
        expected: `${describeElf(wanted.bits, little, wanted.machine)} (${platform}-${arch})`,
      }
    }
  }
  const abiFound = abiOf(bytes)
  if (abiFound !== undefined && abiFound !== abi) {
    return {
      found: `Node ABI ${abiFound} (NODE_MODULE_VERSION)`,
      expected: `Node ABI ${abi} (Node.js ${process.versions.node}), or a Node-API addon`,
    }
  }
  return undefined
}

const registerSymbol = Buffer.from('node_register_module_v')

/** The NODE_MODULE_VERSION in a `node_register_module_v<N>` symbol name, if the file has one. */
function abiOf(bytes: Buffer): string | undefined {
  const at = bytes.indexOf(registerSymbol)
  if (at < 0) return undefined
  let end = at + registerSymbol.length
  while (end < bytes.length && bytes[end]! >= 0x30 && bytes[end]! <= 0x39) end++
  const digits = bytes.toString('latin1', at + registerSymbol.length, end)
  return digits === '' ? undefined : digits
}

/** The `<platform>-<arch>` names Node uses, for telling prebuilt alternatives apart. */
const platformArch =
  /(?:^|[-_.])(aix|android|darwin|freebsd|linux|linuxmusl|openbsd|sunos|win32)-(x64|arm64|ia32|arm|armv7|armv6|ppc64|s390x|riscv64|loong64|mips|mipsel)(?:$|[-_.])/
const abiTag = /(?:^|\.)(?:abi\d+|napi(?:-v\d+)?|electron)(?:\.|$)/

/**
 * True when a `.node` entry is one of several prebuilt alternatives a package
 * chooses from at run time (prebuildify / node-gyp-build's
 * `prebuilds/<platform>-<arch>/node.abi115.node`, per-platform package folders):
 * a bundle may carry builds for other machines it never loads, so such a file
 * is checked only when it is required. Any other addon is checked when the
 * bundle is validated.
 */
export function isPrebuiltAlternative(entry: string): boolean {
  const parts = entry.split('/')
  const name = parts[parts.length - 1] ?? ''
  return parts.slice(0, -1).some((p) => platformArch.test(p)) || abiTag.test(name.replace(/\.node$/, ''))
}

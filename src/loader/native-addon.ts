import { sha256Hex } from '../bundle/content-hash.js'
import type { Bundle } from '../bundle/open-bundle.js'
import { nyalaError, reasonOf } from '../errors.js'
import { isPrebuiltAlternative, targetMismatch } from './addon-target.js'

/**
 * The exports of every native addon loaded, by sha256 of the `.node` file.
 * Kept for the life of the process on purpose: a shared library cannot be
 * unloaded (Node never calls `dlclose`), and loading the same addon again from
 * another path maps a second copy, whose static state and registration
 * would be separate. So every generation, of every module, whose bundle holds
 * an addon with these bytes gets the one exports object.
 */
const loadedAddons = new Map<string, unknown>()

/**
 * Refuses a bundle holding a native addon built for another platform, machine
 * or Node ABI (NYALA_ERR_ADDON_INCOMPATIBLE): called while a reload validates
 * its candidate, before any generation is touched. Prebuilt alternatives for
 * other machines (`isPrebuiltAlternative`) are checked when required.
 */
export function checkAddons(bundle: Bundle): void {
  for (const [entry, content] of bundle.files) {
    if (!entry.endsWith('.node') || isPrebuiltAlternative(entry)) continue
    const mismatch = targetMismatch(content)
    if (mismatch)
      throw nyalaError('NYALA_ERR_ADDON_INCOMPATIBLE', { bundle: bundle.file, entry, ...mismatch })
  }
}

/**
 * `require` of a `.node` entry: checks its header, then `process.dlopen`s it
 * from `filename` (its copy in the cache directory) unless an addon with the
 * same bytes is loaded already, whose exports are returned.
 */
export function loadAddon(bundle: Bundle, entry: string, filename: string): unknown {
  const content = bundle.files.get(entry)!
  const hash = sha256Hex(content)
  if (loadedAddons.has(hash)) return loadedAddons.get(hash)
  const mismatch = targetMismatch(content)
  if (mismatch) throw nyalaError('NYALA_ERR_ADDON_INCOMPATIBLE', { bundle: bundle.file, entry, ...mismatch })
  const mod = { exports: {} as unknown }
  try {
    process.dlopen(mod, filename)
  } catch (err) {
    throw dlopenError(bundle.file, entry, err)
  }
  loadedAddons.set(hash, mod.exports)
  return mod.exports
}

/** A `dlopen` refusal: what says "built for something else" becomes NYALA_ERR_ADDON_INCOMPATIBLE. */
function dlopenError(bundle: string, entry: string, err: unknown) {
  const reason = reasonOf(err)
  const abi = /NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/.exec(reason)
  if (abi) {
    return nyalaError(
      'NYALA_ERR_ADDON_INCOMPATIBLE',
      { bundle, entry, found: `Node ABI ${abi[1]}`, expected: `Node ABI ${abi[2]}` },
      err,
    )
  }
  if (
    /wrong ELF class|invalid ELF header|ELF file|incompatible architecture|not a valid Win32/.test(reason)
  ) {
    const expected = `${process.platform}-${process.arch}`
    return nyalaError('NYALA_ERR_ADDON_INCOMPATIBLE', { bundle, entry, found: reason, expected }, err)
  }
  return nyalaError('NYALA_ERR_ADDON_LOAD', { bundle, entry, reason }, err)
}

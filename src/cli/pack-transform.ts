import type { PackTransform } from '../bundle/pack.js'

/**
 * The seam where `nyala pack` precompiles a module's sources before they are zipped: it gets
 * every selected file (own files and production packages, entry -> content) and the module
 * directory, and returns the files to zip. It returns them unchanged: the loader's decision
 * (docs/modules.md, "When transforms happen") is that a bundle holds the sources as written and
 * the host transforms ES modules and TypeScript at load time, cached by content, so an exploded
 * directory and its packed bundle run the same way. Were that to change, this function should
 * ask the loader's transforms (src/loader/), not grow its own. It lives in cli/ because bundle/
 * may not import the loader.
 */
export const precompileForPack: PackTransform = async (files) => files

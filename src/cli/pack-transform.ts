import type { PackTransform } from '../bundle/pack.js'

/**
 * The seam where `nyala pack` precompiles a module's sources before they are zipped: it gets
 * every selected file (own files and production packages, entry -> content) and the module
 * directory, and returns the files to zip. Today it returns them unchanged. Which sources are
 * precompiled (TypeScript, ES modules) and which are left to load time is the loader's call:
 * this function should ask the loader's transforms (src/loader/), not grow its own. It lives in
 * cli/ because bundle/ may not import the loader.
 */
export const precompileForPack: PackTransform = async (files) => files

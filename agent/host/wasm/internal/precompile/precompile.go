// Package precompile fills a WASM compilation cache for tests built with
// -race: the race detector slows wazero's compiler tenfold while cached
// machine code runs just as fast. Its one test, run without -race by
// wasmbuild, loads each module named in $DEPAI_PRECOMPILE_MODULES (a list
// separated by the OS path list separator) through the wasm transport with
// the cache in $DEPAI_PRECOMPILE_CACHE.
//
// It is a test rather than a command because wazero names its cache
// directory after its own version, which a test binary reports as "dev" and
// a command as the module version: only a test fills the cache tests read.
package precompile

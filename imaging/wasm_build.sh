#!/usr/bin/env bash
# Builds one of the project's own C kernels for wasm32 with SIMD, without libc (the caller owns all memory; the module
# imports its memory and exports __heap_base, where its buffers may start). Debian: apt-get install clang lld.
#
# Usage: wasm_build.sh source.c out.wasm [more clang flags]
set -euo pipefail
src=$1
out=$2
shift 2
clang --target=wasm32 -O3 -msimd128 "$@" -nostdlib -ffreestanding -fno-builtin \
  -Wl,--no-entry -Wl,--import-memory -Wl,--export=__heap_base -Wl,--strip-all \
  -o "$out" "$src"

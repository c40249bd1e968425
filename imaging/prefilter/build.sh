#!/usr/bin/env bash
# Rebuilds prefilter.wasm from prefilter.c (Debian: apt-get install clang lld). tests/prefilter_test.ts checks that
# the committed binary is what this script makes.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-prefilter.wasm}
clang --target=wasm32 -O3 -msimd128 -nostdlib -ffreestanding -fno-builtin \
  -Wl,--no-entry -Wl,--import-memory -Wl,--export=__heap_base -Wl,--strip-all \
  -o "$out" prefilter.c

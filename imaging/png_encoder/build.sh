#!/usr/bin/env bash
# Rebuilds png_encoder.wasm from png_encoder.c (Debian: apt-get install clang lld). tests/png_encode_test.ts checks
# that the committed binary is what this script makes.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-png_encoder.wasm}
# Bulk memory turns the row and stored-block copies into memory.copy (there is no libc memcpy to call).
clang --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding -fno-builtin \
  -Wl,--no-entry -Wl,--import-memory -Wl,--export=__heap_base -Wl,--strip-all \
  -o "$out" png_encoder.c

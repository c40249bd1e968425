#!/usr/bin/env bash
# Rebuilds png_encoder.wasm from png_encoder.c. tests/png_encode_test.ts checks that the committed binary is what this
# script makes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Bulk memory turns the row and stored-block copies into memory.copy (there is no libc memcpy to call).
bash "$here/../wasm_build.sh" "$here/png_encoder.c" "$(realpath -m "${1:-$here/png_encoder.wasm}")" -mbulk-memory

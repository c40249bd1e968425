#!/usr/bin/env bash
# Rebuilds unpack.wasm from unpack.c. tests/unpack_test.ts checks that the committed binary is what this script makes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Bulk memory turns the row and string copies into memory.copy (there is no libc memmove to call).
bash "$here/../wasm_build.sh" "$here/unpack.c" "$(realpath -m "${1:-$here/unpack.wasm}")" -mbulk-memory

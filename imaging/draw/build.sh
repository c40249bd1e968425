#!/usr/bin/env bash
# Rebuilds draw.wasm from draw.c. tests/draw_test.ts checks that the committed binary is what this script makes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Bulk memory turns any block copy or fill the compiler emits into memory.copy/fill (there is no libc to call).
bash "$here/../wasm_build.sh" "$here/draw.c" "$(realpath -m "${1:-$here/draw.wasm}")" -mbulk-memory

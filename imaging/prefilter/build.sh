#!/usr/bin/env bash
# Rebuilds prefilter.wasm from prefilter.c. tests/prefilter_test.ts checks that the committed binary is what this
# script makes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../wasm_build.sh" "$here/prefilter.c" "$(realpath -m "${1:-$here/prefilter.wasm}")"

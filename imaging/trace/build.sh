#!/usr/bin/env bash
# Rebuilds trace.wasm from trace.c. tests/trace_test.ts checks that the committed binary is what this script makes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../wasm_build.sh" "$here/trace.c" "$(realpath -m "${1:-$here/trace.wasm}")"

#!/usr/bin/env bash
# Rebuilds libjpeg_turbo.wasm: libjpeg-turbo's compressor and decompressor (Debian bookworm's source package, the
# library native OpenCV encodes and decodes with there) plus encoder.c and decoder.c (the interfaces
# imaging/jpeg_encode.ts and imaging/jpeg_wasm.ts call) and jsimd_wasm.c (their SIMD stages in WASM SIMD128). Debian:
# apt-get install clang lld wasi-libc dpkg-dev.
#
# Usage: build.sh [out.wasm] [libjpeg-turbo source dir]
# Without a source dir (or JPEG_TURBO_SRC), Debian's source package is fetched with apt-get source into a temp dir,
# through an apt configuration of its own: the system's sources lists and package lists are left as they are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:-$here/libjpeg_turbo.wasm}")
src=${2:-${JPEG_TURBO_SRC:-}}
version=${JPEG_TURBO_VERSION:-1:2.1.5-2}
suite=${DEBIAN_SUITE:-bookworm}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$src" ]; then
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    >"$work/apt/sources.list"
  apt=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" -qq update
  (cd "$work" && apt-get "${apt[@]}" -qq source --download-only "libjpeg-turbo=$version" 2>/dev/null)
  # apt-get checked the files against the signed Sources index; dpkg-source's own signature check (which warns without
  # debian-keyring) is only shown when extraction fails.
  dpkg-source -x "$work"/libjpeg-turbo_*.dsc "$work/src" >"$work/dpkg-source.log" 2>&1 || {
    cat "$work/dpkg-source.log" >&2
    exit 1
  }
  src=$work/src
fi
src=$(cd "$src" && pwd)
[ -f "$src/jcapimin.c" ] || { echo "no libjpeg-turbo source in $src" >&2; exit 1; }

# What CMake would configure, for this build: 8-bit samples, 32-bit size_t, SIMD hooks on, jpeg_mem_src, arithmetic
# decoding (native OpenCV reads arithmetic-coded files; the encoder never writes them, so no arithmetic encoding).
build=$work/build
mkdir -p "$build"
cat >"$build/jconfig.h" <<'EOF'
#define JPEG_LIB_VERSION  62
#define LIBJPEG_TURBO_VERSION  2.1.5
#define LIBJPEG_TURBO_VERSION_NUMBER  2001005
#define WITH_SIMD  1
#define MEM_SRCDST_SUPPORTED  1
#define D_ARITH_CODING_SUPPORTED  1
#define BITS_IN_JSAMPLE  8
EOF
cat >"$build/jconfigint.h" <<'EOF'
#define BUILD  "wasm"
#undef inline
#define INLINE  __inline__ __attribute__((always_inline))
#define THREAD_LOCAL
#define PACKAGE_NAME  "libjpeg-turbo"
#define VERSION  "2.1.5"
#define SIZEOF_SIZE_T  4
#define HAVE_BUILTIN_CTZL
#define FALLTHROUGH  __attribute__((fallthrough));
EOF
sed 's/@COPYRIGHT_YEAR@/1991-2023/' "$src/jversion.h.in" >"$build/jversion.h"

# NO_GETENV/NO_PUTENV: no environment in this module (and no WASI imports for it). USE_CLZ_INTRINSIC: clz is one WASM
# instruction, and it spares the C Huffman coder's 64 KiB bit-count table.
flags=(--target=wasm32-wasi --sysroot=/usr -msimd128 -DNO_GETENV -DNO_PUTENV -DUSE_CLZ_INTRINSIC -I"$build" -I"$src"
  -Wno-pass-failed)
# Per-block and per-row code at -O3; set-up code (markers, parameters, memory manager, the DCT variants these settings
# do not use) at -Os, as it runs once per image.
hot=(jccoefct jcdctmgr jchuff jcprepct jcmainct jcsample jccolor
  jdhuff jdphuff jdarith jdcoefct jdmainct jdsample jdcolor jdapistd)
cold=(jcapimin jcapistd jcinit jcmarker jcmaster jcparam jfdctint jfdctfst jfdctflt
  jdapimin jdatasrc jdinput jdmarker jdmaster jddctmgr jdpostct jdmerge jidctint jidctfst jidctflt jidctred
  jcomapi jmemmgr jmemnobs jutils jaricom)
objs=()
for f in "${hot[@]}"; do clang "${flags[@]}" -O3 -c "$src/$f.c" -o "$build/$f.o" && objs+=("$build/$f.o"); done
for f in "${cold[@]}"; do clang "${flags[@]}" -Os -c "$src/$f.c" -o "$build/$f.o" && objs+=("$build/$f.o"); done
clang "${flags[@]}" -O3 -c "$here/jsimd_wasm.c" -o "$build/jsimd_wasm.o"
clang "${flags[@]}" -Os -c "$here/encoder.c" -o "$build/encoder.o"
clang "${flags[@]}" -O3 -c "$here/decoder.c" -o "$build/decoder.o"
# wasi-libc's malloc and string functions, no start files (a library, not a command) and no compiler-rt (Debian does
# not ship it for wasm32, and nothing here needs it).
clang "${flags[@]}" -nostartfiles -nodefaultlibs -Wl,--no-entry -Wl,--strip-all -Wl,--gc-sections \
  "${objs[@]}" "$build/jsimd_wasm.o" "$build/encoder.o" "$build/decoder.o" -lc -o "$out"
chmod 644 "$out"

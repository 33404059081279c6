#!/usr/bin/env bash
# Copies the shared libraries that a build's programs need and a bare GPU machine may lack
# (Open MPI, HDF5, yaml-cpp, OpenBLAS, ... and what they pull in) into one folder, so that
# the build runs there with LD_LIBRARY_PATH set to it (trainer/cuda/gpu_check.sh does).
# Left out, because they must be the target machine's own: the CUDA Toolkit's libraries
# (anything under /usr/local/cuda*, and the driver's libcuda) and the C library and its
# loader (glibc: libc, libm, ld-linux, ...).
#
#   trainer/cuda/carry_libs.sh [--tar] [BUILD [OUT]]   # defaults: build-cuda, BUILD/carry-libs
#
# --tar also packs OUT into OUT.tar.xz (about 13 MB instead of 64: Debian's OpenBLAS alone is
# 36 MB, more than a 64 MiB transfer can carry beside the programs); gpu_check.sh unpacks it.
# Reads the programs' ldd output, so it runs on the machine that built them. Prints one line
# per program and the folder's size; exits 1 when a library is missing here ("not found").
set -euo pipefail

tar=0
if [[ ${1:-} == --tar ]]; then
  tar=1
  shift
fi
build=${1:-build-cuda}
out=${2:-$build/carry-libs}
# The programs gpu_check.sh runs; those a build does not have (a CPU build: only dtbench)
# are passed over.
programs=(dtbench dtb-cuda-bench tests/test_cuda_kernels tests/test_cuda_model tests/test_cuda_train tests/test_nccl)

# glibc's own libraries and the loader: never copied (a foreign glibc cannot be mixed in).
is_glibc() {
  case "$(basename "$1")" in
    ld-linux*.so* | libc.so.* | libm.so.* | libmvec.so.* | libpthread.so.* | libdl.so.* | librt.so.* | \
      libresolv.so.* | libutil.so.* | libanl.so.* | libnsl.so.* | libBrokenLocale.so.* | libthread_db.so.*)
      return 0 ;;
  esac
  return 1
}

is_cuda() {
  case "$1" in /usr/local/cuda*) return 0 ;; esac
  case "$(basename "$1")" in libcuda.so* | libnvidia-*.so*) return 0 ;; esac
  return 1
}

# "name => /path (0x...)" lines of ldd: the resolved paths; exits 1 on a library not found.
resolved_libs() {
  local listing
  listing=$(ldd "$1")
  if grep -q "not found" <<<"$listing"; then
    echo "carry_libs: $1 needs libraries missing on this machine:" >&2
    grep "not found" <<<"$listing" >&2
    return 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$listing"
}

mkdir -p "$out"
found=0
for p in "${programs[@]}"; do
  [[ -x "$build/$p" ]] || continue
  found=$((found + 1))
  copied=0
  libs=$(resolved_libs "$build/$p")  # a plain assignment, so that set -e stops on "not found"
  for lib in $libs; do
    if is_glibc "$lib" || is_cuda "$lib"; then continue; fi
    # Under the name the loader asks for (the soname ldd printed), as a plain file.
    cp -L --preserve=mode "$lib" "$out/$(basename "$lib")"
    copied=$((copied + 1))
  done
  echo "carry_libs: $build/$p: $copied libraries"
done
if [[ $found -eq 0 ]]; then
  echo "carry_libs: none of ${programs[*]} in $build (build it first)" >&2
  exit 2
fi
echo "carry_libs: $out: $(ls "$out" | wc -l) files, $(du -sh "$out" | cut -f1)"
if [[ $tar -eq 1 ]]; then
  tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
  echo "carry_libs: $out.tar.xz: $(du -sh "$out.tar.xz" | cut -f1)"
fi

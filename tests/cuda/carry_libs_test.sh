#!/usr/bin/env bash
# trainer/cuda/carry_libs.sh on this build's programs: Open MPI's and HDF5's libraries are
# copied, glibc's and the CUDA Toolkit's are not, and with LD_LIBRARY_PATH at the copy the
# loader takes them from there and dtbench runs.
#   carry_libs_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 out=$3/carry-libs
rm -rf "$out"
fail() {
  echo "FAIL: $*"
  exit 1
}

"$src/trainer/cuda/carry_libs.sh" "$build" "$out"
compgen -G "$out/libmpi.so.*" >/dev/null || fail "Open MPI's libmpi was not copied"
compgen -G "$out/libhdf5*.so.*" >/dev/null || fail "HDF5 was not copied"
for f in "$out"/*; do
  case $(basename "$f") in
    libc.so.* | libm.so.* | ld-linux* | libpthread.so.*) fail "glibc copied: $f" ;;
    libcudart* | libcublas* | libcuda.so*) fail "a CUDA library copied: $f" ;;
  esac
done
ldd_out=$(LD_LIBRARY_PATH="$out" ldd "$build/dtbench")
grep "libmpi.so" <<<"$ldd_out" | grep -q "$out/" || fail "the loader does not take libmpi from $out: $ldd_out"
grep "libhdf5" <<<"$ldd_out" | grep -q "$out/" || fail "the loader does not take HDF5 from $out"
LD_LIBRARY_PATH="$out" "$build/dtbench" --version || fail "dtbench does not run from the copies"
echo "OK carry_libs: $(ls "$out" | wc -l) libraries in $out"

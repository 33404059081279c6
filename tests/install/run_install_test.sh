#!/usr/bin/env bash
# The install tree runs (issue 13): `cmake --install BUILD --prefix TMP/prefix`, then, from a
# folder that has no configs/ of its own, the installed dtbench prepares a small dataset and
# runs the quickstart's smallest run (`single`: one rank, through mpirun) from the installed
# experiment file. To prove that the shipped files come from the install tree and not from
# the source tree the binary was built from, the installed tiny.yaml gets another model
# name first: the run must report that name. Then the whole tree is moved: it must still
# find its files (they are looked up beside the binary, bin/../share/dtbench).
#   run_install_test.sh BUILD_DIR
set -uo pipefail
BUILD=$(realpath "$1")
TMP=$(mktemp -d /tmp/dtb-install.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "[install test] $*"; }

cmake --install "$BUILD" --prefix "$TMP/prefix" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "cmake --install failed"; }
log "installed $(wc -l <"$TMP/install.log") files into $TMP/prefix"
P=$TMP/prefix
VERSION=$(sed -n 's/^project(dtbench VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
for f in bin/dtbench bin/dtb-tc share/dtbench/configs/experiments/quickstart.yaml share/dtbench/configs/model/tiny.yaml \
         share/dtbench/configs/net/decentralized-1g.yaml share/dtbench/configs/devices/h100.yaml \
         share/dtbench/configs/sim/gpt3-xl.yaml share/dtbench/jobs/slurm/sweep.sbatch share/dtbench/jobs/common.sh \
         share/dtbench/netem-tc/apply.sh share/doc/dtbench/README.md share/doc/dtbench/ARCHITECTURE.md \
         "share/modulefiles/dtbench/$VERSION.lua" "share/modulefiles/dtbench/$VERSION"; do
  [[ -e $P/$f ]] || fail "not installed: $f"
done
[[ -x $P/share/dtbench/jobs/slurm/sweep.sbatch ]] || fail "jobs/slurm/sweep.sbatch lost its execute bit"
[[ -z $(find "$P/share/dtbench/configs" -name '*.cpp' -o -name '*.hpp' -o -name CMakeLists.txt) ]] ||
  fail "C++ sources installed under share/dtbench/configs"
grep -q "local prefix = \"$P\"" "$P/share/modulefiles/dtbench/$VERSION.lua" || fail "the Lmod modulefile does not name the prefix $P"
grep -q "set prefix \"$P\"" "$P/share/modulefiles/dtbench/$VERSION" || fail "the Tcl modulefile does not name the prefix $P"

# The installed configs, marked: a run that reads them says "model tiny-installed".
sed -i 's/^  name: tiny$/  name: tiny-installed/' "$P/share/dtbench/configs/model/tiny.yaml"
grep -q "name: tiny-installed" "$P/share/dtbench/configs/model/tiny.yaml" || fail "could not mark the installed tiny.yaml"

mkdir -p "$TMP/work"
cd "$TMP/work" || fail "no work folder"
for _ in $(seq 300); do echo "The quick brown fox jumps over the lazy dog."; done >corpus.txt
"$P/bin/dtbench" prepare corpus.txt --out data/fortunes.h5 >prepare.log 2>&1 || { cat prepare.log; fail "dtbench prepare failed"; }

# The quickstart's smallest run, named as a user of the install would name it.
run_single() {  # BIN OUT
  "$1" run configs/experiments/quickstart.yaml --only single --set train.steps=3 --out "$2" >"$2.log" 2>&1 ||
    { cat "$2.log"; fail "$1 run ... --only single failed"; }
  [[ -f $2/single.h5 ]] || { cat "$2.log"; fail "no result $2/single.h5"; }
  grep -q "model tiny-installed" "$2/single.log" || { cat "$2/single.log"; fail "the run did not read the installed configs/model/tiny.yaml"; }
}
run_single "$P/bin/dtbench" out
log "the installed dtbench ran the quickstart's 'single' from $TMP/work: out/single.h5"

# Moved as a whole, the tree still finds its files.
mv "$P" "$TMP/moved"
run_single "$TMP/moved/bin/dtbench" out-moved
grep -q -- "--config $TMP/moved/share/dtbench/configs/model/tiny.yaml" out-moved.log || fail "the moved tree's run did not name its own tiny.yaml"
log "OK: moved to $TMP/moved, it still runs from its own share/dtbench"

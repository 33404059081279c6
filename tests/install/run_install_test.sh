#!/usr/bin/env bash
# The install tree runs (issue 13): `cmake --install BUILD --prefix TMP/prefix`, then, from a
# folder that has no configs/ of its own, the installed dtbench prepares a small dataset and
# runs the quickstart's smallest run (`single`: one rank, through mpirun) from the installed
# experiment file. To prove that the shipped files come from the install tree and not from
# the source tree the binary was built from, the installed tiny.yaml gets another model
# name first: the run must report that name. Then the whole tree is moved: it must still
# find its files (they are looked up beside the binary, bin/../share/dtbench). Before the move:
# `module load dtbench` with each installed modulefile (when a module command is installed),
# and the installed job scripts run from a project folder as made-up Slurm jobs: a pair, then
# the pair resubmitted, each pair in a folder of its own.
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

# The modulefiles, loaded (Lmod, or Environment Modules' Tcl module command, when installed;
# ./setup.sh installs Lmod, which reads both the .lua and the Tcl one): each sets PATH,
# DTBENCH_HOME and DTBENCH to the install. Else the job scripts below get DTBENCH_HOME by hand.
module_command() {
  type module >/dev/null 2>&1 && return 0
  local init
  for init in /usr/share/lmod/lmod/init/bash /usr/share/modules/init/bash; do
    [[ -f $init ]] && source "$init" >/dev/null 2>&1 && type module >/dev/null 2>&1 && return 0
  done
  return 1
}
load_module() {  # MODULEPATH_DIR: module load dtbench from there, then check what it set
  set +u  # the module command's shell functions read unset variables
  module purge >/dev/null 2>&1
  export MODULEPATH=$1
  module load dtbench 2>"$TMP/module.err" || { cat "$TMP/module.err"; fail "module load dtbench from $1 failed"; }
  set -u
  [[ ${DTBENCH_HOME:-} == "$P/share/dtbench" ]] || fail "$2: DTBENCH_HOME is '${DTBENCH_HOME:-}', expected $P/share/dtbench"
  [[ ${DTBENCH:-} == "$P/bin/dtbench" ]] || fail "$2: DTBENCH is '${DTBENCH:-}', expected $P/bin/dtbench"
  [[ $(command -v dtbench) == "$P/bin/dtbench" ]] || fail "$2: dtbench on PATH is '$(command -v dtbench)', expected $P/bin/dtbench"
  dtbench --help >"$TMP/help.txt" 2>&1 || { cat "$TMP/help.txt"; fail "$2: dtbench --help failed"; }
  grep -q "run" "$TMP/help.txt" || fail "$2: dtbench --help lists no commands"
}
if module_command; then
  mkdir -p "$TMP/tcl/dtbench"  # the Tcl modulefile alone (beside a .lua, Lmod prefers the .lua)
  cp "$P/share/modulefiles/dtbench/$VERSION" "$TMP/tcl/dtbench/"
  load_module "$TMP/tcl" "the Tcl modulefile"
  load_module "$P/share/modulefiles" "the Lmod modulefile"
  log "module load dtbench (Tcl and Lua modulefiles): PATH, DTBENCH_HOME and DTBENCH name $P; dtbench --help runs"
else
  log "SKIPPED the modulefile check: no module command (Debian package lmod; ./setup.sh installs it)"
  export DTBENCH_HOME=$P/share/dtbench DTBENCH=$P/bin/dtbench
fi

# The installed job scripts, from a project folder with no jobs/, configs/ or results/ of its
# own, run by bash as Slurm would run them (SLURM_* variables of made-up jobs; the ranks
# start through mpirun): the pair lands in one folder, and a resubmitted pair in a second.
mkdir -p "$TMP/proj"
cd "$TMP/proj" || fail "no project folder"
ln -s ../work/data data
cp "$P/share/dtbench/jobs/slurm/decentralized.sbatch" .  # a copy, as users submit them
job() {  # JOB_ID SCRIPT: one made-up Slurm job of one rank, 2 steps; its log as Slurm starts it
  local id=$1 script=$2 name
  name=dtb-$(basename "$2" .sbatch)
  echo "slurm's start of job $id" >"$name-$id.out"
  SLURM_JOB_ID=$id SLURM_JOB_NAME=$name LAUNCHER=mpirun bash "$script" --set train.steps=2 >>"$name-$id.out" 2>&1 ||
    { cat "$name-$id.out" results/*/slurm-"$id".out 2>/dev/null; fail "job $id ($script) failed"; }
}
# The script where it is installed, without DTBENCH_HOME: it finds its tree beside itself.
(unset DTBENCH_HOME DTBENCH; job 101 "$P/share/dtbench/jobs/slurm/centralized.sbatch") || exit 1
job 102 decentralized.sbatch  # the copy: its tree from DTBENCH_HOME
PAIR=results/pair-dp1-pp1-tp1
for f in centralized.h5 decentralized.h5 slurm-101.out slurm-102.out; do
  [[ -f $PAIR/$f ]] || fail "no $PAIR/$f after the first pair (results: $(ls -R results))"
done
grep -q "slurm's start of job 101" "$PAIR/slurm-101.out" || fail "$PAIR/slurm-101.out is not job 101's log"
grep -q "binary: $(realpath "$P/bin/dtbench");" "$PAIR/slurm-101.out" || fail "job 101 did not find the installed bin/dtbench beside its script"
grep -q "model tiny-installed" "$PAIR/centralized.log" || fail "job 101 did not read the installed configs"
[[ -z $(ls ./*.out 2>/dev/null) ]] || fail "a job log was left in the project folder: $(ls ./*.out)"
sum=$(md5sum "$PAIR/centralized.h5")
job 103 decentralized.sbatch  # the pair resubmitted, the other way round
job 104 "$P/share/dtbench/jobs/slurm/centralized.sbatch"
for f in centralized.h5 decentralized.h5 slurm-103.out slurm-104.out; do
  [[ -f $PAIR-2/$f ]] || fail "no $PAIR-2/$f after the pair was resubmitted (results: $(ls -R results))"
done
[[ $(md5sum "$PAIR/centralized.h5") == "$sum" ]] || fail "the resubmitted pair changed the first pair's result"
"$P/bin/dtbench" report "$PAIR-2" >report.txt 2>&1 || { cat report.txt; fail "dtbench report $PAIR-2 failed"; }
grep -Eq '^\| decentralized .*\| +[0-9.]+x \| centralized +\|' report.txt || { cat report.txt; fail "the resubmitted decentralized run has no baseline in its folder"; }
log "installed job scripts from $TMP/proj: the pair in $PAIR/, the resubmitted pair in $PAIR-2/ (with its baseline)"
# A job whose options dtbench run refuses gives its folder back: the corrected job lands
# in the next pair's folder, -3, not -4.
SLURM_JOB_ID=105 SLURM_JOB_NAME=dtb-decentralized bash decentralized.sbatch --no-such-option >bad.txt 2>&1; rc=$?
[[ $rc -eq 2 ]] && grep -q "results: $PAIR-3" bad.txt || { cat bad.txt; fail "job 105 with a bad option: exit $rc"; }
[[ ! -e $PAIR-3 ]] || fail "job 105, refused by dtbench run, left its claim: $(ls "$PAIR-3")"
# Nowhere to find its tree: one clear line, exit code 2.
(unset DTBENCH_HOME; bash decentralized.sbatch >err.txt 2>&1); rc=$?
[[ $rc -eq 2 ]] && grep -q "no jobs/common.sh in DTBENCH_HOME" err.txt || { cat err.txt; fail "a script with no tree: exit $rc"; }
cd "$TMP/work" || fail "no work folder"

# Moved as a whole, the tree still finds its files.
mv "$P" "$TMP/moved"
run_single "$TMP/moved/bin/dtbench" out-moved
grep -q -- "--config $TMP/moved/share/dtbench/configs/model/tiny.yaml" out-moved.log || fail "the moved tree's run did not name its own tiny.yaml"
log "OK: moved to $TMP/moved, it still runs from its own share/dtbench"

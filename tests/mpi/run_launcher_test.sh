#!/usr/bin/env bash
# The build's MPI starts dtbench's ranks, whichever it is (Open MPI or MPICH; cmake/mpi.cmake):
#  1. `dtbench run` with launcher mpirun runs a 2-rank experiment through the build's own
#     launcher (MPIEXEC), with Open MPI's workstation options under Open MPI and none under
#     MPICH (whose hydra refuses them), and the result is written;
#     and inside Slurm srun gets the build's PMI plugin (pmix for Open MPI, pmi2 for MPICH);
#  2. bad input on 2 ranks under that launcher: exit 2 and one error line, from rank 0 only
#     (each rank knows its rank before MPI starts from its launcher's environment:
#     OMPI_COMM_WORLD_RANK under Open MPI, PMI_RANK under MPICH's hydra).
#   run_launcher_test.sh SOURCE_DIR DTBENCH FLAVOR MPIEXEC [LAUNCH FLAGS...]
set -uo pipefail
SRC=$1 DTBENCH=$2 FLAVOR=$3 MPIEXEC=$4
shift 4
TMP=$(mktemp -d /tmp/dtb-launcher.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$TMP" || fail "no scratch folder"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

for _ in $(seq 300); do echo "The quick brown fox jumps over the lazy dog."; done >corpus.txt
"$DTBENCH" prepare corpus.txt --out data/fortunes.h5 >prepare.log 2>&1 || { cat prepare.log; fail "dtbench prepare"; }
cat >exp.yaml <<YAML
name: launcher
launcher: mpirun
defaults: {model: $SRC/configs/model/tiny.yaml, steps: 2}
runs:
  - name: dp2
    layout: {dp: 2}
    set: {train.threads: 1, train.batch_size: 4, train.seq_len: 16}
YAML
"$DTBENCH" run exp.yaml --out out >run.log 2>&1 || { cat run.log out/dp2.log 2>/dev/null; fail "dtbench run under $FLAVOR"; }
[[ -f out/dp2.h5 ]] || { cat run.log; fail "no result out/dp2.h5"; }
line=$(grep -m1 -- " -np 2 " out/dp2.log) || { cat out/dp2.log; fail "no launch line in out/dp2.log"; }
echo "launch line: $line"
[[ $line == "\$ $MPIEXEC -np 2 "* ]] || fail "the run was not started with the build's launcher $MPIEXEC"
case $FLAVOR in
  openmpi) [[ $line == *" --oversubscribe --mca mpi_yield_when_idle 1 "* ]] || fail "Open MPI without --oversubscribe" ;;
  *) [[ $line != *--oversubscribe* && $line != *--mca* && $line != *--allow-run-as-root* ]] || fail "Open MPI options given to $FLAVOR" ;;
esac

# Inside a Slurm allocation srun's plugin follows the build: pmix for Open MPI, pmi2 for MPICH.
plugin=$([[ $FLAVOR == mpich ]] && echo pmi2 || echo pmix)
SLURM_JOB_ID=1 "$DTBENCH" run exp.yaml --launcher srun --out dry --dry-run >dry.log 2>&1 || { cat dry.log; fail "dry run inside Slurm"; }
grep -q -- "srun --mpi=$plugin -n 2 " dry.log || { cat dry.log; fail "$FLAVOR: srun is not started with --mpi=$plugin"; }

"$MPIEXEC" -np 2 "$@" "$DTBENCH" train --set model.no_such_key=1 >bad.log 2>&1
rc=$?
[[ $rc == 2 ]] || { cat bad.log; fail "bad input on 2 ranks: exit $rc, expected 2"; }
n=$(grep -c "^error: " bad.log)
[[ $n == 1 ]] || { cat bad.log; fail "bad input on 2 ranks: $n error lines, expected 1 (rank 0's)"; }
echo "OK: $FLAVOR: dtbench run started 2 ranks with $MPIEXEC; bad input on 2 ranks said once: $(grep '^error: ' bad.log)"

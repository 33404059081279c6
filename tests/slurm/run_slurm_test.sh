#!/bin/bash
# A real one-node Slurm on localhost runs the quickstart's smallest run through
# jobs/slurm/sweep.sbatch (dtbench run -> srun --mpi=pmix), and the test checks its result,
# the job's provenance in it and the job's log moved into the results folder. The job is
# submitted from a folder with no jobs/, configs/ or results/ of its own: the script, which
# Slurm runs as a copy, finds its tree (jobs/common.sh, configs/) from the one submitted.
# Everything is private: munged, slurmctld and slurmd get their own key, socket, config,
# state, logs and free ports under a temporary folder, so a real installation on the host is
# not touched; a trap stops what this script started (by pid) and removes the folder.
#   run_slurm_test.sh DTBENCH SOURCE_DIR
# Exits 77 (ctest: skipped) with the reason when it cannot run: not root, or Debian's
# slurm-wlm / munge missing (./setup.sh installs them).
set -uo pipefail
DTBENCH=$(realpath "$1")
SRC=$(realpath "$2")
WAIT_S=150  # the job itself takes seconds; this bounds a stuck queue

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "needs root (munged runs as user munge, slurmctld and slurmd as root)"
for cmd in munged munge unmunge runuser slurmctld slurmd sbatch squeue scancel sinfo srun h5dump; do
  command -v "$cmd" >/dev/null || skip "'$cmd' not found (Debian packages slurm-wlm, munge and hdf5-tools; ./setup.sh installs them)"
done
compgen -G "/usr/lib/*/slurm-wlm/mpi_pmix*.so" >/dev/null || skip "Slurm's PMIx plugin (mpi_pmix.so) not found"

TMP=$(mktemp -d /tmp/dtb-slurm.XXXXXX)
chmod 755 "$TMP"
export SLURM_CONF=$TMP/slurm/slurm.conf
DAEMONS=()  # pids of slurmctld and slurmd, started here

log() { echo "[slurm test] $*"; }

cleanup() {
  # Jobs first (their slurmstepd belongs to our slurmd), then the daemons, then munged.
  if [[ -f $SLURM_CONF ]]; then
    scancel --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null
    for _ in $(seq 20); do [[ -z $(squeue -h 2>/dev/null) ]] && break; sleep 0.5; done
  fi
  for pid in "${DAEMONS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${DAEMONS[@]}"; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
  done
  [[ -f $TMP/munge/munged.pid ]] && kill "$(cat "$TMP/munge/munged.pid")" 2>/dev/null
  sleep 0.5
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$TMP"/work/*.out "$TMP"/work/results/slurm-test/*.out "$TMP"/slurm/log/*.log "$TMP"/munge/munged.log; do
    [[ -f $f ]] && { echo "---- $f"; tail -n 30 "$f"; }
  done
  exit 1
}

# A TCP port nobody listens on (nothing answers a connect).
free_port() {
  for _ in $(seq 50); do
    local p=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free TCP port found"
}

start_munge() {
  mkdir -p "$TMP/munge"
  dd if=/dev/urandom of="$TMP/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$TMP/munge"
  chmod 755 "$TMP/munge"  # munged wants the socket's folder readable by all
  chmod 400 "$TMP/munge/munge.key"
  runuser -u munge -- munged --socket="$TMP/munge/munge.sock" --key-file="$TMP/munge/munge.key" \
    --pid-file="$TMP/munge/munged.pid" --log-file="$TMP/munge/munged.log" --seed-file="$TMP/munge/munged.seed" ||
    fail "munged did not start"
  munge -S "$TMP/munge/munge.sock" -n | unmunge -S "$TMP/munge/munge.sock" >/dev/null || fail "munge credentials do not verify"
}

write_slurm_conf() {
  local host mem
  host=$(hostname -s)
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) / 2 ))
  mkdir -p "$TMP/slurm/state" "$TMP/slurm/spool" "$TMP/slurm/log"
  cat >"$SLURM_CONF" <<EOF
ClusterName=dtbtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$TMP/munge/munge.sock
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$TMP/slurm/state
SlurmdSpoolDir=$TMP/slurm/spool
SlurmctldPidFile=$TMP/slurm/slurmctld.pid
SlurmdPidFile=$TMP/slurm/slurmd.pid
SlurmctldLogFile=$TMP/slurm/log/slurmctld.log
SlurmdLogFile=$TMP/slurm/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

start_slurm() {
  slurmctld -D -f "$SLURM_CONF" >"$TMP/slurm/log/slurmctld.out" 2>&1 &
  DAEMONS+=($!)
  slurmd -D -f "$SLURM_CONF" >"$TMP/slurm/log/slurmd.out" 2>&1 &
  DAEMONS+=($!)
  for _ in $(seq 60); do
    [[ $(sinfo -h -o %t 2>/dev/null) == idle ]] && return
    sleep 0.5
  done
  fail "the node did not come up idle: $(sinfo 2>&1 | tail -n 1)"
}

# A work folder with a small dataset where the quickstart expects its data
# (data/fortunes.h5), and nothing else.
prepare_work() {
  mkdir -p "$TMP/work/data"
  for _ in $(seq 300); do echo "The quick brown fox jumps over the lazy dog."; done >"$TMP/work/corpus.txt"
  (cd "$TMP/work" && "$DTBENCH" prepare corpus.txt --out data/fortunes.h5 >/dev/null) || fail "dtbench prepare failed"
}

# "INDEX NAME RANKS" of the quickstart's smallest train run (fewest ranks, then fewest
# steps), from its dry run.
smallest_run() {
  (cd "$TMP/work" && "$DTBENCH" run "$SRC/configs/experiments/quickstart.yaml" --dry-run --out results/dry) |
    sed -n 's/^\[run \([0-9]*\)\/[0-9]*\] \([^:]*\): train, \([0-9]*\) ranks\{0,1\}, \([0-9]*\) steps.*/\1 \2 \3 \4/p' |
    sort -k3,3n -k4,4n | awk 'NR == 1 { print $1 - 1, $2, $3 }'
}

start_munge
write_slurm_conf
start_slurm
log "Slurm is up: $(sinfo -h -o '%P %D %t %N')"
prepare_work
read -r INDEX NAME RANKS <<<"$(smallest_run)"
[[ -n ${NAME:-} ]] || fail "could not read the quickstart's runs (dtbench run --dry-run)"
log "submitting the quickstart's smallest run: index $INDEX, '$NAME', $RANKS rank(s)"
cd "$TMP/work" || fail "no work folder"
export DTBENCH OUT=results/slurm-test
OVERCOMMIT=()
(( RANKS > $(nproc) )) && OVERCOMMIT=(--overcommit)  # else the job waits for cores this node lacks
JOB=$(timeout "$WAIT_S" sbatch --wait --parsable --array="$INDEX" --ntasks="$RANKS" "${OVERCOMMIT[@]}" \
  "$SRC/jobs/slurm/sweep.sbatch" configs/experiments/quickstart.yaml --set train.steps=3)
rc=$?
[[ $rc -eq 124 ]] && fail "the job did not finish within $WAIT_S s"
# The job's log: written to the submit folder (#SBATCH --output), moved into the results folder.
LOG=results/slurm-test/slurm-${JOB%%;*}_$INDEX.out
cat "$LOG" ./*.out 2>/dev/null
[[ $rc -eq 0 ]] || fail "the job ended with exit code $rc"
[[ -f $LOG ]] || fail "the job's log is not in its results folder as $LOG (results/: $(ls results))"
[[ -z $(ls ./*.out 2>/dev/null) ]] || fail "a job log was left in the submit folder"
grep -q "of $SRC/configs/experiments/quickstart.yaml ->" "$LOG" || fail "the job did not take its configs from the tree it was submitted from"
grep -q "srun --mpi=pmix -n $RANKS" "$LOG" || fail "the run was not launched with srun --mpi=pmix"
[[ -f results/slurm-test/$NAME.h5 ]] || fail "no result results/slurm-test/$NAME.h5"
# Provenance: the job and the software, as the result file records them.
h5dump -A results/slurm-test/$NAME.h5 >attrs.txt || fail "h5dump cannot read the result"
attr() { grep -A12 "ATTRIBUTE \"$1\"" attrs.txt | sed -n 's/.*(0): "\(.*\)"$/\1/p' | head -n 1; }
[[ $(attr slurm_job_id) =~ ^[0-9]+$ ]] || fail "no slurm_job_id in the result (got '$(attr slurm_job_id)')"
[[ $(attr slurm_array_job_id) == "${JOB%%;*}" ]] || fail "slurm_array_job_id '$(attr slurm_array_job_id)', expected ${JOB%%;*}"
[[ $(attr slurm_job_name) == dtb-sweep ]] || fail "slurm_job_name '$(attr slurm_job_name)', expected dtb-sweep"
[[ $(attr slurm_nodelist) == "$(hostname -s)" ]] || fail "slurm_nodelist '$(attr slurm_nodelist)', expected $(hostname -s)"
[[ $(attr slurm_ntasks) == "$RANKS" ]] || fail "slurm_ntasks '$(attr slurm_ntasks)', expected $RANKS"
[[ -n $(attr slurm_tasks_per_node) ]] || fail "no slurm_tasks_per_node in the result"
for a in mpi_library openblas_config openblas_core compiler build_flags cpu_model; do
  [[ -n $(attr $a) ]] || fail "no $a in the result"
done
log "provenance: job $(attr slurm_job_id) '$(attr slurm_job_name)' on $(attr slurm_nodelist), $(attr slurm_ntasks) task(s) ($(attr slurm_tasks_per_node) per node); $(attr mpi_library | cut -c1-40)..."
"$DTBENCH" report results/slurm-test >report.txt 2>&1 || { cat report.txt; fail "dtbench report failed on the job's result"; }
grep -q "| $NAME " report.txt || { cat report.txt; fail "the report has no row for '$NAME'"; }
log "OK: results/slurm-test/$NAME.h5 written by the Slurm job and reported"

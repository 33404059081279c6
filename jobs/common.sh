# Shared by jobs/slurm/*.sbatch and jobs/local/*.sh; sourced from the repository root.
# Settings (environment variables; the scripts set their defaults at their top):
#   DTBENCH       the binary (default build/dtbench)
#   PP, TP        pipeline stages, tensor-parallel ranks (default 1); DP = ranks / (PP x TP)
#   MICROBATCHES  micro-batches per step (default 1 without PP, else 2 x PP)
#   OUT           results folder (default results/pair-dp<DP>-pp<PP>-tp<TP>)
#   EXPERIMENT    the pair experiment (default configs/experiments/pair.yaml)

DTBENCH=${DTBENCH:-build/dtbench}

dtb_fail() {
  echo "$(basename "${0}"): $*" >&2
  exit 2
}

dtb_check() {
  [[ -x "$DTBENCH" ]] || dtb_fail "no dtbench binary at '$DTBENCH' (build it, or set DTBENCH=...)"
  [[ -d configs/experiments ]] || dtb_fail "run (or submit) from the repository root: no configs/experiments in $(pwd)"
}

# dtb_pair RUN RANKS LAUNCHER [dtbench run options...]: the run named RUN (centralized or
# decentralized) of the pair experiment on RANKS ranks, DP = RANKS / (PP x TP).
dtb_pair() {
  local run=$1 ranks=$2 launcher=$3
  shift 3
  local pp=${PP:-1} tp=${TP:-1}
  (( ranks % (pp * tp) == 0 )) || dtb_fail "$ranks ranks do not split into PP x TP = $pp x $tp"
  local dp=$(( ranks / (pp * tp) ))
  local mb=${MICROBATCHES:-$(( pp > 1 ? 2 * pp : 1 ))}
  local out=${OUT:-results/pair-dp${dp}-pp${pp}-tp${tp}}
  # A resubmitted Slurm job whose run is already in the pair's folder gets a folder of its
  # own, named by its job id, instead of being refused (results are never overwritten).
  if [[ -z ${OUT:-} && -n ${SLURM_JOB_ID:-} && -e $out/$run.h5 ]]; then
    echo "$out/$run.h5 exists (an earlier job): this job writes into $out-job$SLURM_JOB_ID"
    out=$out-job$SLURM_JOB_ID
  fi
  echo "layout: DP=$dp PP=$pp TP=$tp ($ranks ranks), $mb micro-batch(es); results: $out"
  dtb_move_log "$out"
  dtb_graceful "$DTBENCH" run "${EXPERIMENT:-configs/experiments/pair.yaml}" --only "$run" --launcher "$launcher" --out "$out" \
    --set parallel.dp="$dp" --set parallel.pp="$pp" --set parallel.tp="$tp" --set parallel.microbatches="$mb" "$@"
}

# dtb_graceful COMMAND...: runs COMMAND (dtbench run) and passes the script's SIGINT (Ctrl-C)
# and SIGTERM (kill, scancel) on to it as SIGUSR1, dtbench run's graceful stop: its running
# run ends its step and writes a checkpoint and its results, no other run starts, and it
# exits with 3, which ends the script (set -e). Without this the shell would wait for the
# command to end before acting on a signal (Ctrl-C), or die and leave it running (SIGTERM).
# dtbench run may get Ctrl-C's SIGINT itself too: a signal of another kind does not hurry it,
# a second Ctrl-C does (it sends SIGTERM, then SIGKILL, to its launcher).
dtb_graceful() {
  "$@" &
  local pid=$! rc=0
  # shellcheck disable=SC2064  # the pid is known now
  trap "kill -USR1 $pid 2>/dev/null || true" INT TERM
  while :; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break  # gone: rc is its exit code, not a trap's wake-up
  done
  trap - INT TERM
  return "$rc"
}

# dtb_move_log OUT: inside a Slurm job, its log moves from where the scripts' #SBATCH
# --output puts it (results/<job name>-<job id>.out, or -<array job id>_<task>.out) into
# OUT as slurm-<job id>.out (slurm-<array job id>_<task>.out), beside the results it
# explains. Slurm keeps writing into the moved file (a rename on one file system keeps it
# open). A log placed elsewhere with sbatch --output stays where it was asked for.
dtb_move_log() {
  local out=$1 id
  [[ -n ${SLURM_JOB_ID:-} ]] || return 0
  if [[ -n ${SLURM_ARRAY_JOB_ID:-} ]]; then id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}; else id=$SLURM_JOB_ID; fi
  local log=results/${SLURM_JOB_NAME:-}-$id.out
  [[ -f $log ]] || return 0
  mkdir -p "$out" && mv "$log" "$out/slurm-$id.out" && echo "log: $out/slurm-$id.out"
}

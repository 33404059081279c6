# Shared by jobs/slurm/*.sbatch and jobs/local/*.sh, sourced as DTB_HOME/jobs/common.sh with
# the folder the results go to (the submit folder, or where a local script was started) as
# the working directory. DTB_HOME is dtbench's tree: a repository checkout, or an install's
# share/dtbench; the scripts take it from DTBENCH_HOME (the modulefile sets it), else from
# where the script itself lies, else the working directory (a repository root).
# Settings (environment variables; the scripts set their defaults at their top):
#   DTBENCH       the binary (default: DTB_HOME/build/dtbench of a checkout, or the install's
#                 bin/dtbench beside DTB_HOME, else dtbench on PATH)
#   PP, TP        pipeline stages, tensor-parallel ranks (default 1); DP = ranks / (PP x TP)
#   MICROBATCHES  micro-batches per step (default 1 without PP, else 2 x PP)
#   OUT           results folder (default results/pair-dp<DP>-pp<PP>-tp<TP>, numbered in Slurm)
#   EXPERIMENT    the pair experiment (default configs/experiments/pair.yaml)

dtb_fail() {
  echo "$(basename "${0}"): $*" >&2
  exit 2
}

# dtb_find PATH: PATH when it exists here (or is absolute), else DTB_HOME's copy when that
# exists (configs/... of the checkout or the install), else PATH (dtbench then names it).
dtb_find() {
  if [[ -e $1 || $1 == /* || ! -e ${DTB_HOME:-.}/$1 ]]; then echo "$1"; else echo "$DTB_HOME/$1"; fi
}

dtb_default_binary() {
  local candidate
  for candidate in "$DTB_HOME/build/dtbench" "$DTB_HOME/../../bin/dtbench"; do
    [[ -x $candidate ]] && { realpath "$candidate"; return; }
  done
  command -v dtbench || echo "$DTB_HOME/build/dtbench"
}

DTB_HOME=$(realpath "${DTB_HOME:-.}")
DTBENCH=${DTBENCH:-$(dtb_default_binary)}

# dtb_check EXPERIMENT: the binary runs and the experiment file is there.
dtb_check() {
  [[ -x "$DTBENCH" ]] || dtb_fail "no dtbench binary at '$DTBENCH' (build it, module load dtbench, or set DTBENCH=...)"
  [[ -f "$1" ]] || dtb_fail "no experiment '$1' here or in $DTB_HOME (run from the repository root, module load dtbench, or set DTBENCH_HOME=...)"
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
  local experiment base out
  experiment=$(dtb_find "${EXPERIMENT:-configs/experiments/pair.yaml}")
  dtb_check "$experiment"
  base=${OUT:-results/pair-dp${dp}-pp${pp}-tp${tp}}
  out=$(dtb_pair_folder "$base" "$run") || exit 2
  [[ $out == "$base" ]] || echo "$run was started in $base by an earlier job: this job writes into $out"
  echo "layout: DP=$dp PP=$pp TP=$tp ($ranks ranks), $mb micro-batch(es); results: $out"
  echo "binary: $DTBENCH; experiment: $experiment"
  dtb_move_log "$out"
  local rc=0
  dtb_graceful "$DTBENCH" run "$experiment" --only "$run" --launcher "$launcher" --out "$out" \
    --set parallel.dp="$dp" --set parallel.pp="$pp" --set parallel.tp="$tp" --set parallel.microbatches="$mb" "$@" || rc=$?
  dtb_release_folder "$out" "$run"
  return $rc
}

# dtb_pair_folder BASE RUN: the folder this job's RUN writes into. With OUT, or outside
# Slurm, BASE itself (dtbench run refuses a finished result there). A Slurm job takes the
# first of BASE, BASE-2, BASE-3, ... in which RUN has not been started yet, so the n-th
# centralized job and the n-th decentralized job of a layout share a folder: a resubmitted
# pair lands together, beside and not over the first. The job claims RUN's folder by
# creating RUN.log there, which fails if it exists (noclobber: atomic, so two jobs starting at
# once take two folders); dtbench run then writes the run's log into it.
dtb_pair_folder() {
  local base=$1 run=$2 n=1 out=$1
  if [[ -n ${OUT:-} || -z ${SLURM_JOB_ID:-} ]]; then echo "$base"; return; fi
  while :; do
    mkdir -p "$out" || dtb_fail "cannot create the results folder $out"
    (set -C; : >"$out/$run.log") 2>/dev/null && break
    n=$(( n + 1 ))
    out=$base-$n
  done
  echo "$out"
}

# dtb_release_folder OUT RUN: a claim (dtb_pair_folder) that dtbench run never used, because
# it refused the job's options before starting RUN (RUN.log is still empty), is given back,
# so that the corrected job lands beside its twin again. OUT goes too if nothing else is in it.
dtb_release_folder() {
  [[ -z ${OUT:-} && -n ${SLURM_JOB_ID:-} && -f $1/$2.log && ! -s $1/$2.log ]] || return 0
  rm -f "$1/$2.log"
  rmdir "$1" 2>/dev/null || true
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
# --output puts it (<job name>-<job id>.out, or -<array job id>_<task>.out, in the submit
# folder) into OUT as slurm-<job id>.out (slurm-<array job id>_<task>.out), beside the
# results it explains. Slurm keeps writing into the moved file (a rename on one file system
# keeps it open). A log placed elsewhere with sbatch --output stays where it was asked for.
dtb_move_log() {
  local out=$1 id
  [[ -n ${SLURM_JOB_ID:-} ]] || return 0
  if [[ -n ${SLURM_ARRAY_JOB_ID:-} ]]; then id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}; else id=$SLURM_JOB_ID; fi
  local log=${SLURM_JOB_NAME:-}-$id.out
  [[ -f $log ]] || return 0
  mkdir -p "$out" && mv "$log" "$out/slurm-$id.out" && echo "log: $out/slurm-$id.out"
}

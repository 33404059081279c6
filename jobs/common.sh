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
  echo "layout: DP=$dp PP=$pp TP=$tp ($ranks ranks), $mb micro-batch(es); results: $out"
  "$DTBENCH" run "${EXPERIMENT:-configs/experiments/pair.yaml}" --only "$run" --launcher "$launcher" --out "$out" \
    --set parallel.dp="$dp" --set parallel.pp="$pp" --set parallel.tp="$tp" --set parallel.microbatches="$mb" "$@"
}

#!/usr/bin/env bash
# Example Slurm Prolog: applies a dtbench network profile on this node's device for the
# job's lifetime, when the job asks for one; slurm-epilog.sh removes it. In slurm.conf:
#   Prolog=/opt/dtbench/share/dtbench/netem-tc/slurm-prolog.sh
#   Epilog=/opt/dtbench/share/dtbench/netem-tc/slurm-epilog.sh
#   PrologFlags=Alloc          # run on every node of the allocation when it starts
# A job asks with its comment:  sbatch --comment=dtb-tc:dtfm-5-cities job.sbatch  (and runs
# dtbench with the `unshaped` profile: the kernel now shapes). Profiles are only taken by
# name from PROFILES (the operator's folder), never from a path the user gives.
# Ranks are assumed in blocks of NumTasks / NumNodes per node, nodes in the allocation's
# order (srun's default block distribution); each node shapes as its first rank.
# Slurm drains a node whose Prolog fails: a job asking for an unknown profile fails here
# with the reason in slurmd's log. Runs as root; DTB_TC_DRY_RUN=1 prints instead of applying.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# ---- settings an operator may change ----
# Allowed profiles, NAME.yaml: the install tree's share/dtbench/configs/net (or the source tree's).
PROFILES=${DTB_TC_PROFILES:-$( [[ -d $here/../configs/net ]] && echo "$here/../configs/net" || echo "$here/../../configs/net" )}
DEV=${DTB_TC_DEV:-eth0}                              # the device the jobs' MPI traffic uses
# -----------------------------------------------------------------------------------------
job=${SLURM_JOB_ID:?Slurm sets SLURM_JOB_ID for a Prolog}
info=$(scontrol show job -o "$job")
comment=$(sed -n 's/.* Comment=\(dtb-tc:[A-Za-z0-9._-]*\).*/\1/p' <<<"$info")
[[ -n $comment ]] || exit 0   # the job asked for no shaping
name=${comment#dtb-tc:}
[[ -f $PROFILES/$name.yaml ]] || { echo "dtb-tc prolog: job $job: no profile '$name' in $PROFILES" >&2; exit 1; }

# One address per rank, in rank order: the nodes in the allocation's order, each repeated
# for its ranks.
nodes=$(scontrol show hostnames "$(sed -n 's/.* NodeList=\([^ ]*\).*/\1/p' <<<"$info")")
ntasks=$(sed -n 's/.* NumTasks=\([0-9]*\).*/\1/p' <<<"$info")
nnodes=$(wc -w <<<"$nodes")
per_node=$(( ${ntasks:-$nnodes} / nnodes )); (( per_node > 0 )) || per_node=1
hosts=$(mktemp /tmp/dtb-tc-hosts.XXXXXX)
trap 'rm -f "$hosts"' EXIT
me=$(hostname -s) rank=-1 i=0
for node in $nodes; do
  addr=$(getent ahostsv4 "$node" | awk 'NR == 1 {print $1}')
  [[ -n $addr ]] || { echo "dtb-tc prolog: job $job: cannot resolve $node" >&2; exit 1; }
  [[ $node == "$me" ]] && rank=$i
  for _ in $(seq "$per_node"); do echo "$addr" >>"$hosts"; i=$((i + 1)); done
done
(( rank >= 0 )) || { echo "dtb-tc prolog: job $job: $me is not in its node list" >&2; exit 1; }
apply=(--apply)
[[ ${DTB_TC_DRY_RUN:-0} == 1 ]] && apply=()
"$here/apply.sh" "$PROFILES/$name.yaml" "$rank" "$DEV" "$hosts" "${apply[@]}"

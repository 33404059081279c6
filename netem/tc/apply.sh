#!/usr/bin/env bash
# Applies a dtbench network profile with Linux tc to this host's device, for one rank, or
# removes it. Without --apply it only prints the commands (a dry run): review them first.
#
#   netem/tc/apply.sh PROFILE.yaml RANK DEV HOSTS [--apply] [--replace-root]
#   netem/tc/apply.sh --remove DEV [--apply] [--replace-root]
#
# HOSTS lists one address per rank, in rank order. DEV's own root or ingress qdisc (one the
# kernel did not set by default and dtb-tc did not set) is never deleted without
# --replace-root: the script stops (exit 3) and says so. Needs root (for --apply) and dtb-tc
# (found at $DTB_TC, else beside this script's install, else build/netem/dtb-tc). See README.md here.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# The source tree's build, or an install tree's bin/ (share/dtbench/netem-tc/../../../bin).
dtb_tc=${DTB_TC:-$here/../../build/netem/dtb-tc}
[[ -n ${DTB_TC:-} || -x $dtb_tc || ! -x $here/../../../bin/dtb-tc ]] || dtb_tc=$here/../../../bin/dtb-tc
usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit 2; }

apply=0
args=()
replace=()
for a in "$@"; do
  if [[ $a == --apply ]]; then apply=1; elif [[ $a == --replace-root ]]; then replace=(--replace-root); else args+=("$a"); fi
done

[[ ${#args[@]} -gt 0 ]] || usage
[[ -x $dtb_tc ]] || { echo "apply.sh: $dtb_tc not found: build dtb-tc or set DTB_TC" >&2; exit 2; }
if [[ ${args[0]} == --remove ]]; then
  [[ ${#args[@]} -eq 2 ]] || usage
  script=$("$dtb_tc" --remove --dev "${args[1]}" "${replace[@]}")
else
  [[ ${#args[@]} -eq 4 ]] || usage
  script=$("$dtb_tc" "${args[0]}" --rank "${args[1]}" --dev "${args[2]}" --hosts "${args[3]}" "${replace[@]}")
fi

if [[ $apply -eq 0 ]]; then
  printf '%s\n' "$script"
  echo "# dry run: nothing applied; add --apply to run these commands as root" >&2
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "apply.sh: --apply needs root" >&2; exit 2; }
printf '%s\n' "$script" | sh -e

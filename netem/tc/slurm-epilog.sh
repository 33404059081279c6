#!/usr/bin/env bash
# Example Slurm Epilog: removes the shaping slurm-prolog.sh applied for a job (see there for
# slurm.conf). It removes only what dtb-tc recorded on the device (/run/dtb-tc/DEV), so a
# job that asked for no shaping, or an operator's own qdisc, is left as it is; it never fails
# for that (Slurm would drain the node).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DEV=${DTB_TC_DEV:-eth0}   # the same device as the Prolog's
[[ -e /run/dtb-tc/$DEV ]] || exit 0
"$here/apply.sh" --remove "$DEV" --apply

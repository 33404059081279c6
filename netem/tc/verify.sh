#!/usr/bin/env bash
# Measures the shaped path from this host (rank RANK) to rank PEER's host and compares it
# with what the profile says, once both hosts applied their shaping (apply.sh ... --apply):
# the round trip with ping (the average of COUNT probes) against the profile's one-way
# latencies there and back, and the throughput with iperf3 (PEER's host runs `iperf3 -s`)
# against the link's rate capped by the NICs, as TCP payload (1448 of every 1514 bytes).
#
#   netem/tc/verify.sh PROFILE.yaml RANK PEER HOSTS [--tolerance 0.1] [--seconds 5] [--count 20] [--port 5201]
#
# Prints one line per figure and exits 0 when both lie within the tolerance (the RTT also
# within 0.5 ms: the hosts' own round trip), 1 when one does not, 2 on bad usage or a missing
# tool (ping from iputils-ping, iperf3; dtb-tc as for apply.sh). A link without a rate limit
# has its throughput printed, not compared. For a long fat path (high rate x RTT) raise the
# hosts' TCP buffers (sysctl net.ipv4.tcp_rmem / tcp_wmem) or iperf3 measures its window.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dtb_tc=${DTB_TC:-$here/../../build/netem/dtb-tc}
[[ -n ${DTB_TC:-} || -x $dtb_tc || ! -x $here/../../../bin/dtb-tc ]] || dtb_tc=$here/../../../bin/dtb-tc
usage() { sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }
die() { echo "verify.sh: $*" >&2; exit 2; }

tol=0.1 seconds=5 count=20 port=5201
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --tolerance) tol=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --count) count=${2:?}; shift 2 ;;
    --port) port=${2:?}; shift 2 ;;   # iperf3 -s -p PORT on the peer
    -h|--help) usage ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ ${#args[@]} -eq 4 ]] || usage
profile=${args[0]} rank=${args[1]} peer=${args[2]} hosts=${args[3]}
[[ -x $dtb_tc ]] || die "$dtb_tc not found: build dtb-tc or set DTB_TC"
for tool in ping iperf3 awk; do command -v "$tool" >/dev/null || die "'$tool' not found (Debian: iputils-ping, iperf3)"; done

expect=$("$dtb_tc" "$profile" --rank "$rank" --hosts "$hosts" --expect "$peer") || exit 2
eval "$expect"  # rtt_s=... rate_bps=... payload_bps=...
ip=$(sed 's/#.*//' "$hosts" | awk 'NF {n++; if (n == '"$((peer + 1))"') {print $1; exit}}')
[[ -n $ip ]] || die "$hosts has no address for rank $peer"

# ping: "rtt min/avg/max/mdev = 0.034/0.045/0.061/0.008 ms"
rtt_ms=$(ping -c "$count" -i 0.2 -q "$ip" | awk -F'/' '/^(rtt|round-trip)/ {print $5}')
[[ -n $rtt_ms ]] || { echo "verify.sh: ping $ip got no answer" >&2; exit 1; }
# iperf3 -f m: the receiver's line "... 95.7 Mbits/sec  receiver"
mbit=$(iperf3 -c "$ip" -p "$port" -t "$seconds" -f m | awk '/receiver/ {for (i = 1; i < NF; ++i) if ($(i + 1) == "Mbits/sec") print $i}')
[[ -n $mbit ]] || { echo "verify.sh: iperf3 to $ip measured nothing (is 'iperf3 -s' running there?)" >&2; exit 1; }

awk -v rtt_ms="$rtt_ms" -v want_rtt_s="$rtt_s" -v mbit="$mbit" -v want_bps="$payload_bps" -v tol="$tol" \
    -v path="rank $rank -> rank $peer ($ip)" 'BEGIN {
  want_ms = want_rtt_s * 1e3; ok = 1
  rtt_ok = (rtt_ms - want_ms <= tol * want_ms + 0.5) && (want_ms - rtt_ms <= tol * want_ms + 0.5)
  printf "%s\n  rtt         measured %10.3f ms      profile %10.3f ms      %s\n", path, rtt_ms, want_ms, rtt_ok ? "ok" : "OFF"
  ok = ok && rtt_ok
  if (want_bps > 0) {
    want = want_bps / 1e6; dev = (mbit - want) / want
    rate_ok = dev <= tol && -dev <= tol
    printf "  throughput  measured %10.2f Mbit/s  profile %10.2f Mbit/s  %s (%+.1f%%, TCP payload)\n", mbit, want, rate_ok ? "ok" : "OFF", 100 * dev
    ok = ok && rate_ok
  } else {
    printf "  throughput  measured %10.2f Mbit/s  profile unlimited: not compared\n", mbit
  }
  exit ok ? 0 : 1
}'

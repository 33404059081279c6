#!/usr/bin/env bash
# netem/tc on a real kernel (issue 13): two network namespaces joined by a veth pair stand
# for two hosts. Each applies its rank's dtb-tc script for a two-site profile (50 Mbps
# between the sites; with 10 ms one-way latency where the kernel has the netem qdisc, none
# where it has not: then the RTT part checks the unshaped round trip and the output says
# why), then netem/tc/verify.sh measures RTT (ping) and throughput (iperf3) and must find
# both within 10% of the profile. Also: a root qdisc the operator set (tbf, handle 5:) is
# neither replaced nor removed without --replace-root, and is with it.
#   run_tc_verify_check.sh PATH/TO/dtb-tc SOURCE_DIR
# Exit codes: 0 pass, 1 fail, 77 skipped (not root; no ip netns, veth, htb, ping or iperf3).
set -u
DTB_TC=$(realpath "${1:-}")
SRC=$(realpath "${2:-}")
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, tc)"
for t in ip tc ping iperf3; do command -v "$t" >/dev/null || skip "'$t' not found (Debian: iproute2, iputils-ping, iperf3; ./setup.sh installs them)"; done

A=dtbv$$a B=dtbv$$b TMP=$(mktemp -d /tmp/dtb-tcv.XXXXXX)
cleanup() {
  [[ -n ${IPERF:-} ]] && kill "$IPERF" 2>/dev/null
  ip netns del "$A" 2>/dev/null; ip netns del "$B" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$A" && ip netns add "$B" || skip "cannot create network namespaces"
ip -n "$A" link add eth0 type veth peer name eth0 netns "$B" || skip "no veth"
ip -n "$A" addr add 10.215.0.2/24 dev eth0 && ip -n "$B" addr add 10.215.0.3/24 dev eth0
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
# The state record (/run/dtb-tc) must not leak between the namespaces or into the host:
# each "host" gets its own /run through a private mount namespace.
inns() { local ns=$1; shift; ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs none /run && $*"; }

latency=0ms
if tc -n "$A" qdisc add dev lo root netem delay 1ms 2>/dev/null; then
  tc -n "$A" qdisc del dev lo root; latency=10ms
else
  echo "netem qdisc not available in this kernel: the profile has no latency, so the RTT check compares the unshaped round trip (the rate path, htb, is checked in full)"
fi
cat >"$TMP/two.yaml" <<YAML
name: two-sites
source: "tests/netns/run_tc_verify_check.sh"
sites:
  - {name: a, ranks: 1, intra: {latency: 0ms, bandwidth: 10Gbps}}
  - {name: b, ranks: 1, intra: {latency: 0ms, bandwidth: 10Gbps}}
links:
  - {between: [a, b], latency: $latency, bandwidth: 50Mbps}
YAML
printf '10.215.0.2\n10.215.0.3\n' >"$TMP/hosts"
export DTB_TC
APPLY=$SRC/netem/tc/apply.sh

# An operator's root qdisc on A's device: refused, kept, then replaced only when asked.
tc -n "$A" qdisc add dev eth0 root handle 5: tbf rate 1gbit burst 100000 latency 50ms
out=$(inns "$A" "'$APPLY' '$TMP/two.yaml' 0 eth0 '$TMP/hosts' --apply" 2>&1); rc=$?
[[ $rc -eq 3 && $out == *"did not set"* ]] || fail "an operator's root qdisc was not refused (exit $rc): $out"
[[ $(tc -n "$A" qdisc show dev eth0 root) == "qdisc tbf 5: root"* ]] || fail "the operator's tbf was touched: $(tc -n "$A" qdisc show dev eth0 root)"
out=$(inns "$A" "'$APPLY' --remove eth0 --apply" 2>&1); rc=$?
[[ $rc -eq 3 && $(tc -n "$A" qdisc show dev eth0 root) == "qdisc tbf 5: root"* ]] || fail "--remove deleted a root qdisc dtb-tc did not record (exit $rc): $out"
echo "an operator's root qdisc: kept by apply.sh and apply.sh --remove (exit 3: $out)"

# Shape both hosts (A's with --replace-root, over the operator's tbf), serve iperf3 on B, verify from A.
inns "$A" "'$APPLY' '$TMP/two.yaml' 0 eth0 '$TMP/hosts' --apply --replace-root" || fail "apply.sh --replace-root failed on A"
[[ $(tc -n "$A" qdisc show dev eth0 root) == "qdisc htb 1: root"* ]] || fail "A's root is not dtb-tc's htb after --replace-root"
inns "$B" "'$APPLY' '$TMP/two.yaml' 1 eth0 '$TMP/hosts' --apply" || fail "apply.sh failed on B (the kernel's default root)"
ip netns exec "$B" iperf3 -s -1 -p 5211 >/dev/null 2>&1 &
IPERF=$!
sleep 0.5
out=$(ip netns exec "$A" "$SRC/netem/tc/verify.sh" "$TMP/two.yaml" 0 1 "$TMP/hosts" --seconds 4 --count 10 --port 5211 2>&1); rc=$?
echo "$out"
[[ $rc -eq 0 ]] || fail "verify.sh found the shaped path off the profile (exit $rc)"
echo "OK: verify.sh measured the shaped path within 10% of the profile"

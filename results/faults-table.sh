#!/bin/bash
# The rows of README.md's fault table for link faults, the phase watchdog, DiLoCo's NaN,
# the outlier skip, the strategy checksums, and the stops and refusals ("job ends after":
# signals to mpirun, to dtbench run and to jobs/local/sweep.sh, dtbench run's timeout, a
# killed run, refused starts) (issue 14). Run from the repository root after building;
# works in a scratch folder (first argument, default /tmp/dtb-faults). Prints each case's
# exit code and real time, and rank 0's step times from its step lines.
set -u
B=$PWD/build/dtbench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "${1:-/tmp/dtb-faults}" && cd "${1:-/tmp/dtb-faults}"
[ -f fortunes.h5 ] || $B prepare --out fortunes.h5 >/dev/null
MPI="mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1"
SMALL="--set data.path=fortunes.h5 --set model.n_layer=2 --set model.n_embd=32 --set model.n_head=4 --set model.n_ctx=16 --set model.vocab_size=256 --set train.seq_len=16 --set train.batch_size=8 --set train.val_every=0 --set train.threads=1 --set optim.lr=0.01 --set train.log_every=1 --set parallel.dp=2 --set net.profile=$OLDPWD/configs/net/dtfm-3-two-dcs.yaml"
V="--overwrite --set net.clock=virtual --set device.peak_gflops=1 --set device.efficiency=1 --set device.memory_gbs=0.2"
t() { local s=$(date +%s.%N); "$@" > last.out 2> last.err; local rc=$?; local e=$(date +%s.%N); echo "rc=$rc wall=$(echo "$e - $s" | bc) s"; }
vt() {  # rank 0's step times from the step lines of last.out (train.log_every=1)
  python3 -c '
import re, sys
ms = [float(x) for x in re.findall(r"\| ([0-9.]+) ms \| [0-9]+ tok/s", open("last.out").read())]
print("run %.3f s over %d steps: first %.1f ms, median %.1f ms, max %.1f ms" % (sum(ms) / 1e3, len(ms), ms[0], sorted(ms)[len(ms) // 2], max(ms)))'
}
echo "== plain virtual, 40 steps"; t $MPI $B train $SMALL $V --set train.steps=40 --set train.results=plain.h5; vt
echo "== outage OH:VA@0.5..30.5 virtual"; t $MPI $B train $SMALL $V --set train.steps=40 --set train.results=out.h5 --set faults.outages=OH:VA@0.5..30.5; vt
$B sim $SMALL --set device.peak_gflops=1 --set device.efficiency=1 --set device.memory_gbs=0.2 --set train.steps=40 --set faults.outages=OH:VA@0.5..30.5 --out none | grep "link faults"
echo "== bandwidth 0.5:0.01 virtual"; t $MPI $B train $SMALL $V --set train.steps=40 --set train.results=bw.h5 --set faults.bandwidth=0.5:0.01; vt
$B sim $SMALL --set device.peak_gflops=1 --set device.efficiency=1 --set device.memory_gbs=0.2 --set train.steps=40 --set faults.bandwidth=0.5:0.01 --out none | grep "link faults"
echo "== burst loss enter 0.01 leave 0.3 virtual"; t $MPI $B train $SMALL $V --set train.steps=40 --set train.results=burst.h5 --set faults.burst_enter=0.01 --set faults.burst_leave=0.3; vt
$B sim $SMALL --set device.peak_gflops=1 --set device.efficiency=1 --set device.memory_gbs=0.2 --set train.steps=40 --set faults.burst_enter=0.01 --set faults.burst_leave=0.3 --out none | grep "link faults"
echo "== outage on the wall clock *@2..7"; t $MPI $B train $SMALL --overwrite --set train.steps=150 --set net.clock=wall --set train.results=wall.h5 --set faults.outages=*@2..7; vt
for p in init startup finalize; do echo "== hang at $p, watchdog 3"; t $MPI $B train $SMALL --overwrite --set train.steps=2 --set net.watchdog_s=3 --set faults.hang_rank=1 --set faults.hang_at=$p --set train.results=hang.h5; grep error last.err | head -2; done
echo "== DiLoCo NaN on worker 1 at step 3"; t $MPI $B train $SMALL --overwrite --set train.steps=8 --set strategy.name=diloco --set strategy.inner_steps=4 --set faults.grad_spike_step=3 --set faults.grad_spike=nan --set faults.grad_spike_rank=1 --set train.results=nan.h5 --set net.clock=virtual; grep error last.err | head -2
echo "== outlier skip"; t $B train $SMALL --overwrite --set parallel.dp=1 --set train.steps=140 --set optim.outlier_z=6 --set faults.grad_spike_step=135 --set faults.grad_spike=1000 --set train.results=outl.h5 --set train.log_every=1; grep "update skipped" last.out
echo "== DiLoCo checkpoint, a flipped byte in strategy/diloco/anchor"; t $MPI $B train $SMALL --overwrite --set train.steps=4 --set strategy.name=diloco --set strategy.inner_steps=2 --set train.results=dl.h5 --set train.checkpoint=dl-ck.h5
off=$(h5dump -p -H -d strategy/diloco/anchor dl-ck.h5 | grep -o "OFFSET [0-9]*" | awk '{print $2}')
cp dl-ck.h5 dl-bad.h5; printf '\x55' | dd of=dl-bad.h5 bs=1 seek=$((off + 41)) conv=notrunc 2>/dev/null
t $MPI $B train $SMALL --overwrite --set train.steps=6 --set strategy.name=diloco --set strategy.inner_steps=2 --set train.results=dl2.h5 --resume dl-bad.h5; head -2 last.err

# ---- stops and refusals: the time from the fault to the end of the job ----
REPO=$OLDPWD
# A job in a process group of its own: kill -INT -PGID is what a terminal's Ctrl-C does.
bg() { setsid "$@" > last.out 2> last.err & BG=$!; }
wait_for() { for _ in $(seq 600); do grep -q "$1" last.out last.err && return 0; sleep 0.1; done; echo "never saw '$1'"; return 1; }
# ends SIGNAL TARGET: sends it, then the job's exit code and how long after the signal it ended.
ends() { local s=$(date +%s.%N); kill -"$1" -- "$2"; wait $BG; local rc=$?; echo "rc=$rc ended $(echo "$(date +%s.%N) - $s" | bc) s after SIG$1"; }
ranks_of() { pgrep -d, -P "$1"; }  # the ranks mpirun PID started: pid,pid
LONG="--set train.steps=100000 --set train.log_every=1"
for sig in TERM INT USR1; do
  echo "== SIG$sig to mpirun (DP = 2)"; bg $MPI $B train $SMALL --overwrite $LONG --set train.results=sig.h5
  wait_for "step     3/" && ends $sig $BG; grep -h "stopped by" last.out | head -1
done
echo "== SIGKILL of a run: mpirun and both ranks at once (a node lost)"; bg $MPI $B train $SMALL --overwrite $LONG --set train.results_every=2 --set train.results=killed.h5
wait_for "step     7/" && { r=$(ranks_of $BG); s=$(date +%s.%N); kill -KILL $BG ${r//,/ }; wait $BG; echo "rc=$? ended $(echo "$(date +%s.%N) - $s" | bc) s after SIGKILL"; }
h5dump -a status killed.h5 | grep -o '"running"'; h5dump -H -d steps/step killed.h5 | grep -o "DATASPACE.*"
echo "== SIGKILL of mpirun alone: its ranks"; bg $MPI $B train $SMALL --overwrite $LONG --set train.results=orphan.h5
wait_for "step     3/" && { r=$(ranks_of $BG); s=$(date +%s.%N); kill -KILL $BG; wait $BG
  for _ in $(seq 300); do ps -p $r > /dev/null || break; sleep 0.1; done
  echo "ranks $r gone $(echo "$(date +%s.%N) - $s" | bc) s after SIGKILL of mpirun"; ps -p $r > /dev/null && kill -KILL ${r//,/ }; }
echo "== an existing results file"; t $MPI $B train $SMALL --set train.steps=2 --set train.results=sig.h5; grep -h "error" last.err | head -1
# dtbench run: the tiny model, DP = 2 under mpirun (as in tests/test_run_faults.cpp).
exp() {  # exp NAME RUNS...: an experiment file NAME.yaml, its runs one per argument
  local n=$1; shift
  { echo "name: $n"; echo "launcher: mpirun"; echo "defaults:"; echo "  model: $REPO/configs/model/tiny.yaml"
    echo "  set: {data.path: $PWD/fortunes.h5, train.threads: 1, train.val_every: 0, train.log_every: 1}"; echo "runs:"
    for r in "$@"; do echo "  - $r"; done; } > "$n.yaml"; rm -rf "$n"
}
exp long "{name: long, steps: 100000, layout: {dp: 2}}" "{name: next, steps: 2, layout: {dp: 1}}"
echo "== a second dtbench run into the folder while the first runs"; bg $B run long.yaml --out long
wait_for "\[1/2 long\] step     3/" && { $B run long.yaml --only long --out long > second.out 2>&1 & s=$(date +%s.%N); wait $!
  echo "rc=$? refused $(echo "$(date +%s.%N) - $s" | bc) s after its start"; head -1 second.out; }
echo "== a dtbench run child killed by a signal (SIGKILL of rank 0)"; r=$(pgrep -P "$(pgrep -P $BG)" | head -1)
ends KILL "$r"; grep -h "FAILED after" last.out
echo "== SIGINT to dtbench run (Ctrl-C: its process group)"; rm -rf long; bg $B run long.yaml --out long
wait_for "\[1/2 long\] step     3/" && ends INT -$BG; grep -h "SIGUSR1 to\|not started\|FAILED" last.out
exp tmo "{name: long, steps: 100000, timeout: 5, layout: {dp: 2}}"
echo "== dtbench run's timeout (5 s)"; bg $B run tmo.yaml --out tmo; s=$(date +%s.%N)
wait_for "timed out after 5s"; wait $BG; echo "rc=$? ended $(echo "$(date +%s.%N) - $s" | bc) s after its start"; grep -h "SIGUSR1 to\|FAILED" last.out
echo "== SIGINT to jobs/local/sweep.sh (Ctrl-C)"; rm -rf long; bg env DTBENCH=$B bash -c "cd $REPO && exec jobs/local/sweep.sh $PWD/long.yaml --out $PWD/long"
wait_for "\[1/2 long\] step     3/" && ends INT -$BG; grep -h "SIGUSR1 to\|not started\|FAILED" last.out
echo "== SIGTERM to jobs/local/sweep.sh (kill PID)"; rm -rf long; bg env DTBENCH=$B bash -c "cd $REPO && exec jobs/local/sweep.sh $PWD/long.yaml --out $PWD/long"
wait_for "\[1/2 long\] step     3/" && ends TERM $BG; grep -h "SIGUSR1 to\|not started\|FAILED" last.out

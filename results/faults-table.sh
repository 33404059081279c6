#!/bin/bash
# The rows of README.md's fault table for link faults, the phase watchdog, DiLoCo's NaN,
# the outlier skip and the strategy checksums (issue 14). Run from the repository root
# after building; works in a scratch folder (first argument, default /tmp/dtb-faults).
# Prints each case's exit code and real time, and rank 0's step times from its step lines.
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

#!/bin/sh
# The AQ-SGD convergence figure (results/aqsgd-loss.svg) from `dtbench run
# configs/experiments/aqsgd.yaml`'s results: each run's training loss (/steps/loss), the mean
# of the last 20 steps every 5 steps, drawn by gnuplot. Usage: sh results/aqsgd-loss.sh [DIR]
set -e
dir=${1:-results/aqsgd}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for run in fp32 fp32-seed1 fp32-seed2 aqsgd-fw4-bw8 aqsgd-fw3-bw6 aqsgd-fw2-bw4 directq-fw4-bw8 directq-fw3-bw6 directq-fw2-bw4; do
  h5dump -d /steps/loss -y -w 1 -o "$tmp/raw" "$dir/$run.h5" >/dev/null
  tr -s ' ,\n' '\n' < "$tmp/raw" | grep -E '^[0-9.]+$' |
    awk '{ a[NR] = $1 } END { for (i = 20; i <= NR; i += 5) { s = 0; for (j = i - 19; j <= i; j++) s += a[j]; printf "%d %.5f\n", i, s / 20 } }' \
      > "$tmp/$run.dat"
done
sed "s|DATA/|$tmp/|" <<'GP' | gnuplot
set terminal svg size 900,520 dynamic font "sans,13"
set output "results/aqsgd-loss.svg.tmp"
set title "tiny GPT, 2 pipeline stages, 256 sequences: training loss (20-step mean)"
set xlabel "step"
set ylabel "training loss"
set yrange [2.2:3.2]
set xrange [100:300]
set key top right
set grid
D = "DATA/"
plot D."fp32.dat" w l lw 2 lc rgb "black" t "fp32 (seed 1337)", \
     D."fp32-seed1.dat" w l lw 1 dt 2 lc rgb "gray40" t "fp32 (seeds 1, 2)", \
     D."fp32-seed2.dat" w l lw 1 dt 2 lc rgb "gray40" notitle, \
     D."aqsgd-fw4-bw8.dat" w l lw 2 lc rgb "#1f77b4" t "AQ-SGD fw4/bw8", \
     D."aqsgd-fw3-bw6.dat" w l lw 2 lc rgb "#2ca02c" t "AQ-SGD fw3/bw6", \
     D."aqsgd-fw2-bw4.dat" w l lw 1 lc rgb "#17becf" t "AQ-SGD fw2/bw4", \
     D."directq-fw4-bw8.dat" w l lw 2 dt 4 lc rgb "#ff7f0e" t "DirectQ fw4/bw8", \
     D."directq-fw3-bw6.dat" w l lw 2 dt 4 lc rgb "#d62728" t "DirectQ fw3/bw6", \
     D."directq-fw2-bw4.dat" w l lw 1 dt 4 lc rgb "#9467bd" t "DirectQ fw2/bw4"
GP
mv results/aqsgd-loss.svg.tmp results/aqsgd-loss.svg

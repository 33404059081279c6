# Written by dtbench report; `gnuplot detection-m1.gp` redraws the figure.
set terminal svg size 960,540 dynamic noenhanced font 'Helvetica,12' background rgb 'white'
set output "detection-m1.svg"
set title "Detection probability against the sampled fraction p"
set ylabel "P(caught)"
set grid ytics lc rgb '#dddddd'
set format y '%g'
set key below horizontal
set xlabel "p (segments re-executed)"
$s0 << EOD
0.02 0.0215
0.05 0.051
0.1 0.096
0.2 0.193
0.3 0.291
0.5 0.4935
0.7 0.6915
1 1
EOD
$s1 << EOD
0.02 0.02
0.05 0.05
0.1 0.1
0.2 0.2
0.3 0.3
0.5 0.5
0.7 0.7
1 1
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '#1f77b4' title "measured over seeds", \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '#ff7f0e' title "1 - (1 - p)^m"

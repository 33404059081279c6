# Written by dtbench report; `gnuplot detection-m3.gp` redraws the figure.
set terminal svg size 960,540 dynamic noenhanced font 'Helvetica,12' background rgb 'white'
set output "detection-m3.svg"
set title "Detection probability against the sampled fraction p"
set ylabel "P(caught)"
set grid ytics lc rgb '#dddddd'
set format y '%g'
set key below horizontal
set xlabel "p (segments re-executed)"
$s0 << EOD
0.02 0.0575
0.05 0.1345
0.1 0.255
0.2 0.4765
0.3 0.65
0.5 0.876
0.7 0.9715
1 1
EOD
$s1 << EOD
0.02 0.058808
0.05 0.142625
0.1 0.271
0.2 0.488
0.3 0.657
0.5 0.875
0.7 0.973
1 1
EOD
plot $s0 using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '#1f77b4' title "measured over seeds", \
     $s1 using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '#ff7f0e' title "1 - (1 - p)^m"

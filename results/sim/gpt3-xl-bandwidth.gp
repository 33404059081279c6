# Written by dtbench sim; run `gnuplot gpt3-xl-bandwidth.gp` to redraw.
set terminal svg size 900,560 dynamic enhanced font 'Helvetica,13' background rgb 'white'
set output "gpt3-xl-bandwidth.svg"
set title "gpt3-xl (1.42B), DP 8 x PP 8 x TP 1, V100 SXM2 32GB, GPipe, net.algo ring" noenhanced
set xlabel "net.bandwidth (Gbps)" noenhanced
set ylabel "slowdown vs free communication (x)" noenhanced
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set key top right box opaque
set logscale x
set logscale y
set yrange [0.887094:23.5388]
set ytics (1, 2, 5, 10, 20)
set label "dtfm-1-dc-ondemand" at 3.125, 1.02488663 left offset 1,0 font ',11' noenhanced
set label "dtfm-2-dc-spot" at 1.25, 1.676515393 right offset -1,0 font ',11' noenhanced
set label "dtfm-3-two-dcs" at 1.12, 1.423707811 left offset 1,0 font ',11' noenhanced
set label "dtfm-4-regions" at 1.02, 1.757051228 right offset -1,0 font ',11' noenhanced
set label "dtfm-5-cities" at 0.342, 4.130909856 left offset 1,0 font ',11' noenhanced
$curve << EOD
0.1 18.10679006 "100Mbps"
0.155 11.70402771 "155Mbps"
0.239 7.612494518 "239Mbps"
0.37 4.939438488 "370Mbps"
0.573 3.211707656 "573Mbps"
0.887 2.100816893 "887Mbps"
1.37 1.626039335 "1.37Gbps"
2.12 1.317584151 "2.12Gbps"
3.29 1.196384021 "3.29Gbps"
5.08 1.133773743 "5.08Gbps"
7.87 1.092977707 "7.87Gbps"
12.2 1.066614056 "12.2Gbps"
18.8 1.049792024 "18.8Gbps"
29.1 1.038785793 "29.1Gbps"
45.1 1.031658861 "45.1Gbps"
69.8 1.027071982 "69.8Gbps"
108 1.024109632 "108Gbps"
167 1.022197297 "167Gbps"
259 1.02095386 "259Gbps"
400 1.020158229 "400Gbps"
EOD
$marks << EOD
3.125 1.02488663 "dtfm-1-dc-ondemand"
1.25 1.676515393 "dtfm-2-dc-spot"
1.12 1.423707811 "dtfm-3-two-dcs"
1.02 1.757051228 "dtfm-4-regions"
0.342 4.130909856 "dtfm-5-cities"
EOD
plot $curve using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#1f77b4' title "aqsgd-1g, net.bandwidth = x", \
     $marks using 1:2 with points pt 9 ps 1.6 lc rgb '#d62728' title "net.profile (at its slowest link used)"

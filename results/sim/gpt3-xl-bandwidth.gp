# Written by dtbench sim; run `gnuplot gpt3-xl-bandwidth.gp` to redraw.
set terminal svg size 900,560 dynamic enhanced font 'Helvetica,13' background rgb 'white'
set output "gpt3-xl-bandwidth.svg"
set title "gpt3-xl (1.32B), DP 8 x PP 8 x TP 1, V100 SXM2 32GB, GPipe, dp.algo ring" noenhanced
set xlabel "net.bandwidth (Gbps)" noenhanced
set ylabel "slowdown vs free communication (x)" noenhanced
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set key top right box opaque
set logscale x
set logscale y
set yrange [0.876539:22.3821]
set ytics (1, 2, 5, 10, 20)
set label "dtfm-1-dc-ondemand" at 25, 1.00801939 left offset 1,0 font ',11' noenhanced
set label "dtfm-2-dc-spot" at 10, 1.017933583 right offset -1,0 font ',11' noenhanced
set label "dtfm-3-two-dcs" at 1.12, 1.417072293 left offset 1,0 font ',11' noenhanced
set label "dtfm-4-regions" at 1.02, 1.783549471 right offset -1,0 font ',11' noenhanced
set label "dtfm-5-cities" at 0.342, 3.920972666 left offset 1,0 font ',11' noenhanced
$curve << EOD
0.1 17.21700851 "100Mbps"
0.155 11.12752671 "155Mbps"
0.239 7.236188024 "239Mbps"
0.37 4.693921868 "370Mbps"
0.573 3.050727124 "573Mbps"
0.887 2.096556842 "887Mbps"
1.37 1.630874536 "1.37Gbps"
2.12 1.328328387 "2.12Gbps"
3.29 1.206267997 "3.29Gbps"
5.08 1.13910354 "5.08Gbps"
7.87 1.095340061 "7.87Gbps"
12.2 1.067058758 "12.2Gbps"
18.8 1.049013116 "18.8Gbps"
29.1 1.037206309 "29.1Gbps"
45.1 1.029560974 "45.1Gbps"
69.8 1.024640453 "69.8Gbps"
108 1.021462626 "108Gbps"
167 1.01941119 "167Gbps"
259 1.018077308 "259Gbps"
400 1.017223804 "400Gbps"
EOD
$marks << EOD
25 1.00801939 "dtfm-1-dc-ondemand"
10 1.017933583 "dtfm-2-dc-spot"
1.12 1.417072293 "dtfm-3-two-dcs"
1.02 1.783549471 "dtfm-4-regions"
0.342 3.920972666 "dtfm-5-cities"
EOD
plot $curve using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#1f77b4' title "aqsgd-1g, net.bandwidth = x", \
     $marks using 1:2 with points pt 9 ps 1.6 lc rgb '#d62728' title "net.profile (at its slowest link used)"

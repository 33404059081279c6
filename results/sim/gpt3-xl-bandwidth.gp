# Written by dtbench sim; run `gnuplot gpt3-xl-bandwidth.gp` to redraw.
set terminal svg size 900,560 dynamic enhanced font 'Helvetica,13' background rgb 'white'
set output "gpt3-xl-bandwidth.svg"
set title "gpt3-xl (1.32B), DP 8 x PP 8 x TP 1, V100 SXM2 32GB, GPipe, net.algo ring" noenhanced
set xlabel "net.bandwidth (Gbps)" noenhanced
set ylabel "slowdown vs free communication (x)" noenhanced
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set key top right box opaque
set logscale x
set logscale y
set yrange [0.886134:48.7681]
set ytics (1, 2, 5, 10, 20)
set label "dtfm-1-dc-ondemand" at 25, 1.019054108 left offset 1,0 font ',11' noenhanced
set label "dtfm-2-dc-spot" at 10, 1.030159177 right offset -1,0 font ',11' noenhanced
set label "dtfm-3-two-dcs" at 1.12, 1.759872375 left offset 1,0 font ',11' noenhanced
set label "dtfm-4-regions" at 1.02, 3.408183433 right offset -1,0 font ',11' noenhanced
set label "dtfm-5-cities" at 0.342, 5.358980663 left offset 1,0 font ',11' noenhanced
$curve << EOD
0.1 37.51391253 "100Mbps"
0.155 24.24807779 "155Mbps"
0.239 15.77086122 "239Mbps"
0.37 10.23257672 "370Mbps"
0.573 6.792631316 "573Mbps"
0.887 4.681258521 "887Mbps"
1.37 3.322893595 "1.37Gbps"
2.12 2.440386206 "2.12Gbps"
3.29 1.946278972 "3.29Gbps"
5.08 1.64557934 "5.08Gbps"
7.87 1.449647402 "7.87Gbps"
12.2 1.323030172 "12.2Gbps"
18.8 1.242238661 "18.8Gbps"
29.1 1.189378819 "29.1Gbps"
45.1 1.155150157 "45.1Gbps"
69.8 1.133120666 "69.8Gbps"
108 1.118893328 "108Gbps"
167 1.109708918 "167Gbps"
259 1.103737038 "259Gbps"
400 1.099915846 "400Gbps"
EOD
$marks << EOD
25 1.019054108 "dtfm-1-dc-ondemand"
10 1.030159177 "dtfm-2-dc-spot"
1.12 1.759872375 "dtfm-3-two-dcs"
1.02 3.408183433 "dtfm-4-regions"
0.342 5.358980663 "dtfm-5-cities"
EOD
plot $curve using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#1f77b4' title "aqsgd-1g, net.bandwidth = x", \
     $marks using 1:2 with points pt 9 ps 1.6 lc rgb '#d62728' title "net.profile (at its slowest link used)"

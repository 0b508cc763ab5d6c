$d << EOD
1 3.4784 0.8605
2 3.3131 0.8192
4 3.2456 0.8026
8 3.3091 0.8177
16 3.3718 0.8323
32 2.4368 0.6005
64 2.0730 0.4990
128 1.3650 0.3344
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'peak.png'
set title "Peak: k 135168 x n 33792, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set y2label 'fraction of bandwidth limit'
set logscale x 2
set grid
set yrange [0:*]
set y2range [0:1.05]
set y2tics
plot $d using 1:2 with linespoints lw 2 title 'speedup', $d using 1:3 axes x1y2 with linespoints lw 2 title 'bandwidth fraction', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x'

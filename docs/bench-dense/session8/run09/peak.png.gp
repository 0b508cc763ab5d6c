$d << EOD
1 3.8281 0.9441
2 3.4770 0.8579
4 3.7121 0.9139
8 3.4594 0.8523
16 3.4953 0.8601
32 3.5934 0.8814
64 2.7966 0.6702
128 1.7964 0.4405
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

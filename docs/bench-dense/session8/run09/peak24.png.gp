$d << EOD
1 4.9940 0.9355
2 4.9502 0.9270
4 4.8066 0.8995
8 4.3328 0.8111
16 4.5821 0.8563
32 5.2219 0.9733
64 4.1704 0.7606
128 2.4379 0.4559
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'peak24.png'
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

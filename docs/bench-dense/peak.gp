$d << EOD
1 3.4312 0.8451
2 3.2899 0.8100
4 3.2251 0.7935
8 3.2669 0.8035
16 3.0047 0.7383
32 2.2197 0.5448
64 1.5151 0.3633
128 0.7229 0.1769
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

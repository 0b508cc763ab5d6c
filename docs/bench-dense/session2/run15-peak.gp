$d << EOD
1 3.5050 0.8639
2 3.5890 0.8844
4 3.1573 0.7776
8 3.2412 0.7980
16 3.0153 0.7418
32 2.3241 0.5702
64 1.5578 0.3733
128 0.7389 0.1809
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'run15-peak.png'
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

$m0 << EOD
1 2.3700 2.6047 0.5796
2 2.3638 2.6050 0.5801
4 2.3582 2.6001 0.5819
8 2.3205 2.5644 0.5824
16 2.2615 2.5024 0.5759
32 2.1673 2.3564 0.5388
64 1.8066 1.9269 0.4468
128 1.1884 1.2206 0.2952
EOD
$m1 << EOD
1 2.7382 2.9438 0.6893
2 2.7487 2.9571 0.6913
4 2.7675 2.9874 0.6985
8 2.7687 2.9874 0.6985
16 2.6954 2.9049 0.6961
32 2.2741 2.4141 0.5785
64 1.8824 1.9508 0.4713
128 1.4156 1.4518 0.3580
EOD
$m2 << EOD
1 2.3248 2.5370 0.5877
2 2.3575 2.5688 0.5967
4 2.3600 2.5884 0.6014
8 2.3291 2.5584 0.6015
16 2.4157 2.6624 0.6071
32 2.0859 2.2369 0.5279
64 1.7032 1.7925 0.4310
128 1.3398 1.3992 0.3441
EOD
$m3 << EOD
1 3.0687 3.1707 0.7798
2 3.1608 3.2940 0.7915
4 3.1116 3.2156 0.7901
8 3.0521 3.1501 0.7733
16 3.0603 3.1716 0.7789
32 2.7687 2.8579 0.7030
64 2.2236 2.2631 0.5614
128 1.5365 1.4241 0.3513
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'speedup-dense.png'
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

$m0 << EOD
1 2.7112 3.1740 0.5421
2 2.7178 3.1913 0.5422
4 2.7489 3.2084 0.5422
8 2.6419 3.0848 0.5223
16 2.5033 2.9388 0.5138
32 1.9789 2.0944 0.3706
64 1.6286 1.7067 0.3068
128 1.2758 1.3009 0.2496
EOD
$m1 << EOD
1 3.3897 3.7918 0.6727
2 3.3944 3.7863 0.6717
4 3.3904 3.7731 0.6693
8 3.2975 3.6634 0.6510
16 3.0649 3.4875 0.6368
32 2.4255 2.5515 0.4588
64 1.8765 1.9659 0.3670
128 1.4954 1.5192 0.2955
EOD
$m2 << EOD
1 2.8030 3.2554 0.5736
2 2.8853 3.3268 0.5725
4 2.8119 3.2407 0.5727
8 2.6857 3.1098 0.5559
16 2.5621 3.0435 0.5401
32 2.0074 2.1167 0.3835
64 1.5965 1.6694 0.3122
128 1.3895 1.4123 0.2752
EOD
$m3 << EOD
1 3.8468 4.1330 0.7728
2 3.9877 4.2289 0.7907
4 4.0129 4.2273 0.7893
8 3.9118 4.1205 0.7694
16 3.7924 4.0359 0.7562
32 3.0368 3.1131 0.5860
64 2.5283 2.5772 0.4922
128 1.7807 1.7716 0.3438
EOD
set terminal pngcairo size 900,560 font ',11'
set output "speedup-24.png"
set title "Sparse-Marlin 2:4 INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 5.12 with lines dt 2 lc 'gray' title 'ideal 5.12x (2:4, g128)'

$m0 << EOD
1 2.6936 3.1598 0.5377
2 2.6871 3.1587 0.5375
4 2.6737 3.1414 0.5376
8 2.5559 2.9977 0.5186
16 2.4808 2.9111 0.5093
32 2.1230 2.2542 0.3977
64 1.6596 1.7386 0.3134
128 1.3540 1.3860 0.2656
EOD
$m1 << EOD
1 3.3879 3.7946 0.6771
2 3.4005 3.7855 0.6761
4 3.3826 3.7686 0.6716
8 3.2681 3.6536 0.6528
16 3.0683 3.4849 0.6382
32 2.6256 2.7709 0.5002
64 1.9381 2.0217 0.3788
128 1.6135 1.6511 0.3222
EOD
$m2 << EOD
1 2.8057 3.2366 0.5736
2 2.8069 3.2389 0.5747
4 2.7928 3.2180 0.5709
8 2.6744 3.1008 0.5566
16 2.5627 3.0260 0.5394
32 2.1937 2.3222 0.4220
64 1.7251 1.7913 0.3355
128 1.4760 1.5126 0.2955
EOD
$m3 << EOD
1 3.8337 4.0388 0.7585
2 3.9531 4.1659 0.7811
4 3.9410 4.2070 0.7897
8 3.9182 4.1079 0.7715
16 3.8145 4.0455 0.7620
32 3.4875 3.5920 0.6664
64 2.6362 2.6996 0.5188
128 1.9618 1.9182 0.3691
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'speedup-24.png'
set title "Sparse-Marlin 2:4 INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 5.12 with lines dt 2 lc 'gray' title 'ideal 5.12x (2:4, g128)'

$m0 << EOD
1 2.3522 2.5823 0.5793
2 2.3435 2.5849 0.5778
4 2.3452 2.5848 0.5793
8 2.3121 2.5604 0.5793
16 2.2271 2.4849 0.5732
32 2.1365 2.3084 0.5301
64 1.7695 1.8947 0.4396
128 1.1817 1.2145 0.2956
EOD
$m1 << EOD
1 2.7302 2.9368 0.6894
2 2.7618 2.9683 0.6955
4 2.7632 2.9886 0.7007
8 2.7489 2.9584 0.6933
16 2.7028 2.9092 0.6989
32 2.2505 2.3948 0.5757
64 1.8642 1.9351 0.4685
128 1.4014 1.4302 0.3534
EOD
$m2 << EOD
1 2.3366 2.5471 0.5924
2 2.3424 2.5846 0.6011
4 2.3625 2.5794 0.6018
8 2.3241 2.5537 0.6017
16 2.3499 2.5924 0.6046
32 2.0559 2.2092 0.5217
64 1.6912 1.7910 0.4330
128 1.3416 1.3871 0.3415
EOD
$m3 << EOD
1 3.0717 3.1901 0.7872
2 3.1094 3.2179 0.7944
4 3.1166 3.2334 0.7959
8 3.0534 3.1516 0.7753
16 3.1167 3.2240 0.7776
32 2.8088 2.9096 0.7051
64 2.2272 2.2016 0.5452
128 1.5299 1.4701 0.3635
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

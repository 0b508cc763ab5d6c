$m0 << EOD
1 2.3250 2.5765 0.5749
2 2.3075 2.5550 0.5740
4 2.3212 2.5680 0.5773
8 2.2697 2.5164 0.5728
16 2.2390 2.4705 0.5680
32 1.6985 1.8193 0.4195
64 1.4599 1.5374 0.3577
128 1.0451 1.0827 0.2619
EOD
$m1 << EOD
1 2.6920 2.9135 0.6833
2 2.6697 2.9141 0.6833
4 2.7016 2.8921 0.6784
8 2.6800 2.8895 0.6767
16 2.6156 2.8128 0.6735
32 1.8544 1.9463 0.4666
64 1.5637 1.6246 0.3928
128 1.1936 1.2443 0.3076
EOD
$m2 << EOD
1 2.3293 2.5594 0.5945
2 2.3260 2.5593 0.5970
4 2.3244 2.5390 0.5922
8 2.2971 2.5144 0.5921
16 2.3558 2.5733 0.5998
32 1.6974 1.8125 0.4282
64 1.3723 1.4354 0.3444
128 1.1148 1.1466 0.2814
EOD
$m3 << EOD
1 3.0584 3.1735 0.7821
2 3.1797 3.2725 0.7878
4 3.1089 3.2223 0.7930
8 3.0726 3.1806 0.7813
16 3.0368 3.1437 0.7732
32 2.3254 2.3577 0.5806
64 1.9775 2.0141 0.4996
128 1.2895 1.2692 0.3184
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

$m0 << EOD
1 2.0033 2.2370 0.5039
2 2.0002 2.2429 0.5031
4 1.9889 2.2519 0.5054
8 1.9762 2.2359 0.5079
16 1.9384 2.1901 0.4981
32 1.5822 1.6700 0.3863
64 1.0767 1.1182 0.2614
128 0.6857 0.7005 0.1701
EOD
$m1 << EOD
1 2.2037 2.4580 0.5777
2 2.2247 2.4896 0.5849
4 2.2344 2.4948 0.5862
8 2.1942 2.5096 0.5901
16 2.1407 2.4026 0.5778
32 1.7216 1.8018 0.4343
64 1.1684 1.2053 0.2931
128 0.7038 0.7106 0.1760
EOD
$m2 << EOD
1 2.0595 2.2875 0.5205
2 2.0275 2.2458 0.5237
4 2.0191 2.2433 0.5231
8 1.9960 2.2117 0.5224
16 1.9865 2.2157 0.5184
32 1.5818 1.6562 0.3927
64 1.0506 1.0974 0.2647
128 0.6846 0.6809 0.1677
EOD
$m3 << EOD
1 2.7271 2.8201 0.6950
2 2.9143 3.1066 0.7649
4 2.9087 3.0825 0.7586
8 2.9080 3.0582 0.7520
16 2.8439 2.9481 0.7257
32 2.0923 2.0640 0.5093
64 1.3694 1.3713 0.3404
128 0.7346 0.7080 0.1780
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'models.png'
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

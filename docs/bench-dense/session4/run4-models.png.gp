$m0 << EOD
1 2.3102 2.5436 0.5686
2 2.3346 2.5517 0.5650
4 2.3110 2.5449 0.5677
8 2.2807 2.5093 0.5697
16 2.2393 2.4707 0.5666
32 1.7229 1.8691 0.4288
64 1.4156 1.4657 0.3417
128 1.0008 1.0228 0.2483
EOD
$m1 << EOD
1 2.6926 2.8975 0.6800
2 2.6662 2.9047 0.6808
4 2.7202 2.9259 0.6860
8 2.6979 2.8912 0.6783
16 2.6692 2.8762 0.6785
32 1.8895 1.9846 0.4751
64 1.4855 1.5293 0.3701
128 1.1545 1.1566 0.2855
EOD
$m2 << EOD
1 2.3282 2.5240 0.5875
2 2.3191 2.5276 0.5876
4 2.3186 2.5406 0.5914
8 2.3638 2.5755 0.5921
16 2.3495 2.5724 0.5995
32 1.7167 1.8315 0.4325
64 1.3200 1.3636 0.3283
128 1.1076 1.1134 0.2741
EOD
$m3 << EOD
1 3.1295 3.1748 0.7623
2 3.0947 3.1820 0.7813
4 3.1376 3.2177 0.7895
8 3.1465 3.2431 0.7771
16 3.0596 3.1423 0.7711
32 2.3514 2.3052 0.5661
64 1.8144 1.7924 0.4435
128 1.2648 1.2230 0.3062
EOD
set terminal pngcairo size 900,560 font ',11'
set output "speedup-dense.png"
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

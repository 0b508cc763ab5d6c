$m0 << EOD
1 2.7639 3.2417 0.5469
2 2.7831 3.2750 0.5477
4 2.7293 3.2112 0.5477
8 2.6384 3.0857 0.5338
16 2.4511 2.9558 0.5196
32 2.5965 2.8421 0.5000
64 2.0890 2.2481 0.4060
128 1.5063 1.5550 0.2993
EOD
$m1 << EOD
1 3.4053 3.8055 0.6720
2 3.4109 3.8097 0.6713
4 3.3686 3.7667 0.6684
8 3.3226 3.6899 0.6556
16 3.0927 3.5241 0.6431
32 2.8379 3.0313 0.5463
64 2.2845 2.3756 0.4436
128 1.7723 1.8167 0.3532
EOD
$m2 << EOD
1 2.7812 3.2165 0.5657
2 2.8478 3.3207 0.5708
4 2.8022 3.2293 0.5699
8 2.6787 3.1034 0.5541
16 2.5570 3.0340 0.5381
32 2.4447 2.6207 0.4740
64 2.0062 2.1038 0.3929
128 1.6465 1.7095 0.3334
EOD
$m3 << EOD
1 3.8774 4.1022 0.7651
2 3.8942 4.2353 0.7893
4 4.0026 4.2173 0.7857
8 3.9031 4.1036 0.7652
16 3.7923 4.0340 0.7535
32 3.5101 3.6422 0.6711
64 2.8912 2.9702 0.5652
128 2.0317 1.9743 0.3827
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

$m0 << EOD
1 2.2838 2.5190 0.5652
2 2.3099 2.5348 0.5624
4 2.2942 2.5039 0.5563
8 2.2388 2.4660 0.5571
16 2.2095 2.4304 0.5564
32 1.6285 1.7461 0.4008
64 1.0522 1.1094 0.2567
128 0.6873 0.7096 0.1709
EOD
$m1 << EOD
1 2.5939 2.7994 0.6567
2 2.5659 2.7745 0.6483
4 2.5983 2.7929 0.6537
8 2.5517 2.7528 0.6446
16 2.4784 2.6660 0.6262
32 1.9059 1.9989 0.4693
64 1.1824 1.2322 0.2976
128 0.7134 0.7221 0.1780
EOD
$m2 << EOD
1 2.2771 2.4755 0.5732
2 2.2626 2.4654 0.5724
4 2.2933 2.5020 0.5803
8 2.3110 2.5188 0.5787
16 2.3701 2.5876 0.5895
32 1.6307 1.7501 0.4127
64 1.0765 1.1327 0.2719
128 0.6862 0.7075 0.1733
EOD
$m3 << EOD
1 3.0534 3.0483 0.7492
2 3.0878 3.2161 0.7913
4 3.1263 3.2415 0.7962
8 3.0482 3.1667 0.7767
16 3.0126 3.1169 0.7654
32 2.3283 2.3880 0.5868
64 1.4165 1.4391 0.3568
128 0.7666 0.7537 0.1884
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'run15-models.png'
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

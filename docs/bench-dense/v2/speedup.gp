$m0 << EOD
1 2.4135 2.2283
8 2.4064 2.2023
16 2.3340 2.1502
32 1.7608 1.6623
48 1.3517 1.3457
64 1.1213 1.1030
128 0.7076 0.6931
EOD
$m1 << EOD
1 2.7504 2.5109
8 2.6940 2.4943
16 2.5434 2.3773
32 1.9539 1.7797
48 1.4890 1.4603
64 1.2287 1.1865
128 0.7250 0.7112
EOD
$m2 << EOD
1 2.4040 2.2327
8 2.3503 2.2652
16 2.3499 2.1971
32 1.7711 1.6465
48 1.3577 1.3537
64 1.1365 1.0808
128 0.7071 0.6880
EOD
$m3 << EOD
1 3.1987 3.0992
8 3.1608 3.1206
16 3.0745 3.0739
32 2.3506 2.0617
48 1.7341 1.6941
64 1.3977 1.3702
128 0.7646 0.7261
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'speedup.png'
set title "Dense Marlin INT4 vs cuBLAS FP16, layer time summed per model, group 128, PDL\nNVIDIA H100 80GB HBM3, run 7 (same call): v2 main loop (solid) vs original kernel (dashed)"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:4.2]
plot $m0 using 1:2 with linespoints lw 2 lc 1 title 'llama2-7b v2 (auto)', \
     $m0 using 1:3 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b original', \
     $m1 using 1:2 with linespoints lw 2 lc 2 title 'llama2-13b v2 (auto)', \
     $m1 using 1:3 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b original', \
     $m2 using 1:2 with linespoints lw 2 lc 3 title 'llama3-8b v2 (auto)', \
     $m2 using 1:3 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b original', \
     $m3 using 1:2 with linespoints lw 2 lc 4 title 'llama2-70b v2 (auto)', \
     $m3 using 1:3 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b original', \
     3.87 with lines dt 3 lc 'gray' title 'bytes-only ideal 3.87x'

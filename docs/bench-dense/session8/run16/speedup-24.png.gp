$m0 << EOD
1 2.7707 3.2713 0.5437
2 2.7685 3.2647 0.5424
4 2.7349 3.2222 0.5408
8 2.6301 3.0977 0.5262
16 2.5882 3.0293 0.5147
32 2.7402 3.0358 0.5261
64 2.2009 2.3566 0.4242
128 1.6577 1.7126 0.3281
EOD
$m1 << EOD
1 3.3597 3.7472 0.6725
2 3.3701 3.7430 0.6730
4 3.3530 3.7329 0.6716
8 3.2491 3.6275 0.6534
16 3.0678 3.4968 0.6389
32 3.0560 3.3478 0.6040
64 2.3961 2.4789 0.4631
128 1.9000 1.9510 0.3798
EOD
$m2 << EOD
1 2.7848 3.2347 0.5714
2 2.7908 3.2260 0.5715
4 2.7873 3.2221 0.5717
8 2.6682 3.0761 0.5519
16 2.5638 3.0123 0.5368
32 2.6617 2.9173 0.5294
64 2.1154 2.2041 0.4121
128 1.7964 1.8801 0.3653
EOD
$m3 << EOD
1 3.8460 4.1297 0.7710
2 3.9838 4.2078 0.7876
4 3.9794 4.2073 0.7870
8 3.8834 4.0952 0.7656
16 3.7898 4.0513 0.7577
32 4.0495 4.2466 0.7991
64 3.2481 3.3595 0.6402
128 2.2456 2.1904 0.4256
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

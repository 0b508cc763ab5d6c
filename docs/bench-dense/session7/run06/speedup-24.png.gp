$m0 << EOD
1 2.7473 3.2186 0.5480
2 2.7217 3.2024 0.5487
4 2.7454 3.2179 0.5478
8 2.6324 3.0852 0.5341
16 2.5388 2.9823 0.5210
32 2.5620 2.7681 0.4878
64 2.0872 2.2474 0.4078
128 1.4999 1.5499 0.2999
EOD
$m1 << EOD
1 3.4009 3.8038 0.6764
2 3.3824 3.7837 0.6729
4 3.3790 3.7668 0.6700
8 3.2846 3.6620 0.6523
16 3.0398 3.4845 0.6379
32 2.7076 2.8739 0.5298
64 2.2513 2.3401 0.4379
128 1.7624 1.7927 0.3489
EOD
$m2 << EOD
1 2.7883 3.2286 0.5688
2 2.7941 3.2325 0.5707
4 2.8545 3.3043 0.5708
8 2.6883 3.1039 0.5553
16 2.5544 3.0281 0.5374
32 2.4364 2.6042 0.4716
64 2.0019 2.1071 0.3941
128 1.6477 1.7120 0.3338
EOD
$m3 << EOD
1 3.8560 4.1560 0.7747
2 3.9898 4.2162 0.7869
4 3.9828 4.2111 0.7854
8 3.8945 4.1067 0.7664
16 3.8690 4.1423 0.7586
32 3.4417 3.5407 0.6655
64 2.8918 2.8792 0.5500
128 2.0660 2.0515 0.3929
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

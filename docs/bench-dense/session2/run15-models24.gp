$m0 << EOD
1 2.7264 3.1916 0.5340
2 2.7181 3.1897 0.5319
4 2.6754 3.1423 0.5329
8 2.6032 3.0371 0.5190
16 2.4141 2.8684 0.4995
32 1.7085 1.8927 0.3336
64 1.3311 1.4127 0.2536
128 0.9277 0.9674 0.1849
EOD
$m1 << EOD
1 3.3352 3.7377 0.6625
2 3.3365 3.7222 0.6605
4 3.3530 3.7692 0.6685
8 3.2871 3.6623 0.6503
16 3.0548 3.4880 0.6348
32 2.0798 2.2043 0.4045
64 1.5553 1.6353 0.3055
128 0.9957 1.0291 0.1998
EOD
$m2 << EOD
1 2.7875 3.2250 0.5664
2 2.7921 3.2239 0.5667
4 2.7997 3.2266 0.5683
8 2.6737 3.1054 0.5539
16 2.5966 3.0853 0.5367
32 1.7505 1.9183 0.3472
64 1.3158 1.3901 0.2594
128 0.9319 0.9707 0.1889
EOD
$m3 << EOD
1 3.8314 4.0376 0.7506
2 4.0040 4.2202 0.7869
4 4.1093 4.3219 0.7867
8 3.9695 4.1904 0.7635
16 3.8307 4.0429 0.7551
32 2.7479 2.8247 0.5308
64 2.0106 2.0361 0.3880
128 1.1026 1.0832 0.2095
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'run15-models24.png'
set title "Sparse-Marlin 2:4 INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 5.12 with lines dt 2 lc 'gray' title 'ideal 5.12x (2:4, g128)'

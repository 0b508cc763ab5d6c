$m0 << EOD
1 2.7077 3.1615 0.5414
2 2.6832 3.1109 0.5418
4 2.8000 3.2693 0.5437
8 2.5975 3.0108 0.5200
16 2.5507 2.9942 0.5152
32 2.7416 2.9724 0.5242
64 2.1770 2.3325 0.4190
128 1.6456 1.6916 0.3242
EOD
$m1 << EOD
1 3.4091 3.8092 0.6765
2 3.4236 3.8169 0.6774
4 3.4073 3.8014 0.6737
8 3.3109 3.7009 0.6551
16 3.1304 3.5645 0.6391
32 3.0745 3.2930 0.5939
64 2.4459 2.5229 0.4650
128 1.9254 1.9755 0.3823
EOD
$m2 << EOD
1 2.8246 3.2691 0.5655
2 2.8323 3.2727 0.5670
4 2.8688 3.3058 0.5727
8 2.7523 3.1783 0.5552
16 2.6414 3.1159 0.5407
32 2.7246 2.9489 0.5236
64 2.1327 2.2203 0.4145
128 1.8071 1.8825 0.3665
EOD
$m3 << EOD
1 3.9819 4.2678 0.7740
2 4.1559 4.3861 0.7966
4 4.1485 4.3791 0.7949
8 4.0311 4.2448 0.7695
16 3.9408 4.1889 0.7621
32 4.0525 4.2292 0.7773
64 3.2750 3.3698 0.6420
128 2.2331 2.1851 0.4233
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

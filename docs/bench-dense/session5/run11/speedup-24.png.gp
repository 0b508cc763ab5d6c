$m0 << EOD
1 2.7144 3.1877 0.5432
2 2.7181 3.1908 0.5425
4 2.7126 3.1800 0.5432
8 2.6575 3.1335 0.5305
16 2.5075 2.9581 0.5179
32 1.9993 2.1136 0.3716
64 1.6238 1.6980 0.3072
128 1.2771 1.2948 0.2487
EOD
$m1 << EOD
1 3.3888 3.7854 0.6746
2 3.3900 3.7825 0.6729
4 3.3606 3.7619 0.6703
8 3.2638 3.6698 0.6531
16 3.0461 3.4831 0.6370
32 2.3666 2.4922 0.4584
64 1.8640 1.9593 0.3669
128 1.4950 1.5227 0.2963
EOD
$m2 << EOD
1 2.7972 3.2376 0.5736
2 2.8149 3.2371 0.5730
4 2.8059 3.2377 0.5746
8 2.6761 3.1074 0.5583
16 2.5619 3.0404 0.5414
32 2.0049 2.1217 0.3852
64 1.6043 1.6750 0.3137
128 1.3895 1.4142 0.2762
EOD
$m3 << EOD
1 3.9445 4.2256 0.7735
2 3.9514 4.2244 0.7930
4 4.0890 4.3122 0.7895
8 3.9122 4.1166 0.7718
16 3.8721 4.1349 0.7593
32 3.0320 3.1117 0.5872
64 2.5222 2.5741 0.4933
128 1.7784 1.7780 0.3462
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

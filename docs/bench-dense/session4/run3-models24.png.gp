$m0 << EOD
1 2.7660 3.2577 0.5479
2 2.7146 3.1670 0.5476
4 2.7777 3.2624 0.5487
8 2.6693 3.1148 0.5311
16 2.5274 3.0214 0.5205
32 1.9932 2.1035 0.3676
64 1.5598 1.6329 0.2942
128 1.2117 1.2268 0.2369
EOD
$m1 << EOD
1 3.4032 3.7974 0.6741
2 3.4078 3.8005 0.6742
4 3.3708 3.7473 0.6636
8 3.2801 3.6698 0.6513
16 3.0786 3.5006 0.6386
32 2.3718 2.4874 0.4509
64 1.7751 1.8453 0.3439
128 1.4213 1.4172 0.2746
EOD
$m2 << EOD
1 2.8238 3.2658 0.5725
2 2.7998 3.2155 0.5641
4 2.8001 3.2325 0.5692
8 2.6950 3.1213 0.5563
16 2.5675 3.0468 0.5395
32 1.9837 2.0924 0.3759
64 1.5265 1.5871 0.2954
128 1.3015 1.3218 0.2567
EOD
$m3 << EOD
1 3.8838 4.1413 0.7714
2 4.0071 4.2415 0.7886
4 4.0292 4.2424 0.7861
8 3.9039 4.1120 0.7633
16 3.8018 4.0303 0.7500
32 2.9488 2.9963 0.5608
64 2.2881 2.3266 0.4432
128 1.6665 1.6579 0.3174
EOD
set terminal pngcairo size 900,560 font ',11'
set output "speedup-24.png"
set title "Sparse-Marlin 2:4 INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 5.12 with lines dt 2 lc 'gray' title 'ideal 5.12x (2:4, g128)'

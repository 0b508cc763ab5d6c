$m0 << EOD
1 2.2958 2.5287 0.5696
2 2.2928 2.5226 0.5698
4 2.3091 2.5451 0.5716
8 2.2854 2.5105 0.5710
16 2.2762 2.5139 0.5682
32 1.7000 1.8351 0.4258
64 1.4071 1.4597 0.3415
128 0.9639 0.9663 0.2364
EOD
$m1 << EOD
1 2.6922 2.8938 0.6834
2 2.7079 2.9095 0.6851
4 2.7007 2.9068 0.6836
8 2.6660 2.8658 0.6749
16 2.5987 2.7998 0.6744
32 1.8592 1.9511 0.4709
64 1.4795 1.5197 0.3699
128 1.1422 1.1495 0.2862
EOD
$m2 << EOD
1 2.3168 2.5216 0.5893
2 2.2938 2.5131 0.5878
4 2.3554 2.5743 0.5877
8 2.2759 2.4876 0.5871
16 2.3167 2.5350 0.5931
32 1.7290 1.8412 0.4296
64 1.3104 1.3564 0.3287
128 1.0822 1.0817 0.2673
EOD
$m3 << EOD
1 3.0545 3.1677 0.7838
2 3.0752 3.1970 0.7908
4 3.0823 3.2049 0.7919
8 3.0428 3.1548 0.7798
16 3.0366 3.1359 0.7764
32 2.3562 2.3859 0.5916
64 1.8202 1.8360 0.4589
128 1.2628 1.2491 0.3153
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'speedup.png'
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

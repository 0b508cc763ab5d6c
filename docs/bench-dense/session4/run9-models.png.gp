$m0 << EOD
1 2.2903 2.5218 0.5655
2 2.2868 2.5247 0.5668
4 2.3059 2.5390 0.5683
8 2.3204 2.5502 0.5688
16 2.2310 2.4651 0.5604
32 1.7174 1.8472 0.4205
64 1.4677 1.5448 0.3591
128 1.0531 1.0858 0.2624
EOD
$m1 << EOD
1 2.6661 2.8704 0.6740
2 2.6787 2.8784 0.6748
4 2.6726 2.8671 0.6730
8 2.6643 2.8620 0.6709
16 2.5922 2.7873 0.6687
32 1.8599 1.9624 0.4709
64 1.5674 1.6306 0.3942
128 1.1951 1.2504 0.3096
EOD
$m2 << EOD
1 2.3037 2.5207 0.5841
2 2.3099 2.5044 0.5820
4 2.2956 2.5032 0.5814
8 2.3179 2.5247 0.5803
16 2.3212 2.5331 0.5902
32 1.6918 1.8085 0.4263
64 1.3773 1.4541 0.3491
128 1.1266 1.1545 0.2838
EOD
$m3 << EOD
1 3.0343 3.1397 0.7731
2 3.0961 3.2139 0.7899
4 3.0928 3.2133 0.7889
8 3.0508 3.1500 0.7733
16 3.0214 3.1346 0.7697
32 2.3321 2.3290 0.5732
64 1.9358 1.9170 0.4754
128 1.2755 1.2688 0.3184
EOD
set terminal pngcairo size 900,560 font ',11'
set output "speedup-dense.png"
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

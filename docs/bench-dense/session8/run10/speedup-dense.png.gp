$m0 << EOD
1 2.3526 2.5894 0.5816
2 2.3327 2.5448 0.5767
4 2.3982 2.6426 0.5828
8 2.3306 2.5746 0.5833
16 2.3511 2.6156 0.5794
32 2.3032 2.4861 0.5670
64 1.9289 2.0244 0.4697
128 1.2553 1.2931 0.3133
EOD
$m1 << EOD
1 2.7706 2.9879 0.6936
2 2.7831 2.9959 0.6948
4 2.7957 3.0155 0.6984
8 2.7748 2.9906 0.6911
16 2.6932 2.9183 0.6906
32 2.4782 2.6330 0.6232
64 2.0741 2.1484 0.5091
128 1.5271 1.5424 0.3762
EOD
$m2 << EOD
1 2.3747 2.5915 0.5879
2 2.3813 2.6092 0.5917
4 2.3866 2.6046 0.5951
8 2.3585 2.5957 0.5965
16 2.4217 2.6683 0.6038
32 2.2645 2.4214 0.5561
64 1.8614 1.9554 0.4677
128 1.4567 1.5088 0.3678
EOD
$m3 << EOD
1 3.1506 3.2863 0.7844
2 3.1880 3.3011 0.7874
4 3.2077 3.3234 0.7920
8 3.1489 3.2481 0.7715
16 3.1371 3.2434 0.7697
32 3.0858 3.1894 0.7634
64 2.4925 2.5007 0.6156
128 1.6972 1.7197 0.4224
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'speedup-dense.png'
set title "Marlin INT4 (ours) vs cuBLAS FP16, layer time summed per model, group 128\nNVIDIA H100 80GB HBM3"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $m0 using 1:3 with linespoints lw 2 lc 1 title 'llama2-7b (PDL)', $m0 using 1:2 with linespoints lw 1 dt 2 lc 1 title 'llama2-7b (no PDL)', $m1 using 1:3 with linespoints lw 2 lc 2 title 'llama2-13b (PDL)', $m1 using 1:2 with linespoints lw 1 dt 2 lc 2 title 'llama2-13b (no PDL)', $m2 using 1:3 with linespoints lw 2 lc 3 title 'llama3-8b (PDL)', $m2 using 1:2 with linespoints lw 1 dt 2 lc 3 title 'llama3-8b (no PDL)', $m3 using 1:3 with linespoints lw 2 lc 4 title 'llama2-70b (PDL)', $m3 using 1:2 with linespoints lw 1 dt 2 lc 4 title 'llama2-70b (no PDL)', 3.87 with lines dt 2 lc 'gray' title 'ideal 3.87x (g128)'

$m0 << EOD
1 2.3276 2.5651 0.5786
2 2.3828 2.6308 0.5782
4 2.3915 2.6332 0.5798
8 2.2844 2.5157 0.5768
16 2.2890 2.5480 0.5737
32 2.2580 2.4778 0.5679
64 1.9216 2.0461 0.4747
128 1.2588 1.2966 0.3132
EOD
$m1 << EOD
1 2.7329 2.9393 0.6977
2 2.7428 2.9480 0.6983
4 2.7372 2.9511 0.6989
8 2.7112 2.9261 0.6930
16 2.6653 2.8819 0.6920
32 2.4668 2.6406 0.6277
64 2.0389 2.1062 0.5098
128 1.5140 1.5465 0.3830
EOD
$m2 << EOD
1 2.3620 2.5841 0.6031
2 2.3648 2.5809 0.6032
4 2.3377 2.5548 0.5974
8 2.3040 2.5251 0.5966
16 2.3556 2.5905 0.6056
32 2.1958 2.3629 0.5594
64 1.8579 1.9506 0.4704
128 1.4339 1.4979 0.3685
EOD
$m3 << EOD
1 3.0477 3.1517 0.7771
2 3.1029 3.2130 0.7918
4 3.0966 3.2183 0.7921
8 3.0377 3.1563 0.7763
16 3.0599 3.1599 0.7781
32 3.0666 3.0797 0.7595
64 2.4776 2.4150 0.5997
128 1.6495 1.5699 0.3933
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

$m0 << EOD
1 2.3492 2.5795 0.5800
2 2.3582 2.5932 0.5808
4 2.3595 2.6026 0.5842
8 2.3172 2.5658 0.5832
16 2.2689 2.4913 0.5742
32 2.0028 2.1483 0.4932
64 1.5519 1.6237 0.3776
128 1.1512 1.1759 0.2847
EOD
$m1 << EOD
1 2.7250 2.9325 0.6872
2 2.7373 2.9760 0.6971
4 2.7629 2.9765 0.6970
8 2.7481 2.9583 0.6927
16 2.6836 2.8908 0.6941
32 2.0998 2.2124 0.5309
64 1.7066 1.7787 0.4301
128 1.3468 1.3674 0.3366
EOD
$m2 << EOD
1 2.3776 2.5888 0.6016
2 2.3736 2.5931 0.6036
4 2.3550 2.5728 0.5990
8 2.3751 2.5904 0.5958
16 2.3577 2.5917 0.6041
32 1.8933 2.0236 0.4780
64 1.4786 1.5567 0.3750
128 1.2897 1.3099 0.3222
EOD
$m3 << EOD
1 3.0500 3.1498 0.7762
2 3.1571 3.2557 0.7828
4 3.1756 3.2985 0.7933
8 3.0323 3.1537 0.7753
16 3.0507 3.1501 0.7756
32 2.6093 2.6791 0.6602
64 2.1911 2.2368 0.5546
128 1.5081 1.4575 0.3648
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

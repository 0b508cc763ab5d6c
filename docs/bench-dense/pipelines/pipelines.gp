$s7 << EOD
1 2.1926 2.0849 2.0735
16 2.1574 2.0160 2.0474
32 1.6542 1.5481 1.5926
64 1.1074 0.9943 1.0210
128 0.6897 0.6058 0.6214
EOD
$s70 << EOD
1 3.1812 3.0467 3.0359
16 3.0838 3.0188 2.9890
32 2.0765 1.8355 2.0262
64 1.3523 1.1570 1.2093
128 0.7405 0.6256 0.6422
EOD
set terminal pngcairo size 900,560 font ',11'
set output 'pipelines.png'
set title "Dense kernel: shared-memory pipelines, speedup over cuBLAS FP16 (PDL, group 128)\nNVIDIA H100 80GB HBM3, one device call (run 5)"
set xlabel 'batch size m'
set ylabel 'speedup over cuBLAS FP16'
set logscale x 2
set grid
set key top right
set yrange [0:*]
plot $s7 using 1:2 with linespoints lw 2 lc 1 title 'Llama-2-7B cp.async (auto)', \
     $s7 using 1:3 with linespoints lw 1 dt 2 lc 1 title 'Llama-2-7B bulk', \
     $s7 using 1:4 with linespoints lw 1 dt 3 lc 1 title 'Llama-2-7B mbar', \
     $s70 using 1:2 with linespoints lw 2 lc 2 title 'Llama-2-70B cp.async (auto)', \
     $s70 using 1:3 with linespoints lw 1 dt 2 lc 2 title 'Llama-2-70B bulk', \
     $s70 using 1:4 with linespoints lw 1 dt 3 lc 2 title 'Llama-2-70B mbar', \
     1.0 with lines dt 2 lc 'gray' notitle

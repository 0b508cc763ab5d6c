# gnuplot script: speedup of the 2:4 kernel over cuBLAS FP16 vs batch
# (NVIDIA H100 80GB HBM3, run 4 of docs/perf.md "2:4 sparse kernel";
# data: h100-run4-summary.csv, from h100-run4-models.csv). Run 2 (the first
# version of the kernel) dashed for comparison.
set terminal pngcairo size 900,560 font ",11"
set output 'h100-speedup.png'
set datafile separator ','
set logscale x 2
set xlabel 'batch m (rows)'
set ylabel 'speedup over cuBLAS FP16 (layer times summed)'
set title '2:4 INT4 kernel (automatic configuration, with PDL) on NVIDIA H100 80GB HBM3'
set key bottom left font ',9'
set grid
set yrange [0:5.5]
set arrow from 1,4.5 to 128,4.5 nohead dt 2 lc rgb 'red'
set label 'target m<=16: 4.5x' at 1.1,4.7 tc rgb 'red'
set arrow from 1,1.2 to 128,1.2 nohead dt 3 lc rgb 'gray'
set label 'target m=128: 1.2x' at 24,1.4 tc rgb 'gray'
plot for [i=1:4] 'h100-run4-summary.csv' using (strcol(1) eq word("llama2-7b llama2-13b llama3-8b llama2-70b", i) ? $2 : NaN):7 with linespoints lw 2 lc i title word("llama2-7b llama2-13b llama3-8b llama2-70b", i), \
     for [i=1:4] 'h100-run2-summary.csv' using (strcol(1) eq word("llama2-7b llama2-13b llama3-8b llama2-70b", i) ? $2 : NaN):5 with lines dt 2 lc i title word("llama2-7b llama2-13b llama3-8b llama2-70b", i).' (run 2)'

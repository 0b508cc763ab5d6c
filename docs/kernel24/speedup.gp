# gnuplot script: speedup of the 2:4 kernel over cuBLAS FP16 vs batch (H100, run 2)
set terminal pngcairo size 900,560 font ",11"
set output 'h100-speedup.png'
set datafile separator ','
set logscale x 2
set xlabel 'batch m (rows)'
set ylabel 'speedup over cuBLAS FP16 (layer times summed)'
set title '2:4 INT4 kernel (config 3 / cp.async, the auto path) on NVIDIA H100 80GB HBM3'
set key top right
set grid
set yrange [0:5.5]
set arrow from 1,4.5 to 128,4.5 nohead dt 2 lc rgb 'red'
set label 'target m<=16: 4.5x' at 1.1,4.7 tc rgb 'red'
set arrow from 1,1.2 to 128,1.2 nohead dt 3 lc rgb 'gray'
set label 'target m=128: 1.2x' at 24,1.4 tc rgb 'gray'
plot for [mod in "llama2-7b llama2-13b llama3-8b llama2-70b"] 'h100-run2-summary.csv' using (strcol(1) eq mod ? $2 : NaN):5 with linespoints title mod

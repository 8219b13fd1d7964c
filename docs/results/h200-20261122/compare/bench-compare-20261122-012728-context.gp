set terminal svg size 800,520 dynamic background rgb 'white' font 'sans,11'
set output 'bench-compare-20261122-012728-context.svg'
set termoption noenhanced
set title 'decode tok/s against context length (mean, 95% CI) - compare (cuda (NVIDIA H200, sm_90), 2026-11-22T01:24:06Z)'
set xlabel 'average context during decode (prompt + generated/2, tokens)'
set ylabel 'decode tokens / second'
set logscale x 2
set yrange [0:*]
set grid
set key top right
plot 'bench-compare-20261122-012728-context.dat' using 1:2:3:4 with yerrorlines title 'baseline' lc rgb '#4c72b0' pt 7 ps 0.8, '' using 1:5:6:7 with yerrorlines title 'candidate' lc rgb '#dd8452' pt 7 ps 0.8
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo noenhanced size 800,520 background rgb 'white' font 'sans,10'
  set output 'bench-compare-20261122-012728-context.png'
  replot
}

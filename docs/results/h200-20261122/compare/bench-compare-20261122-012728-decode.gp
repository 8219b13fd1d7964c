set terminal svg size 1730,520 dynamic background rgb 'white' font 'sans,11'
set output 'bench-compare-20261122-012728-decode.svg'
set termoption noenhanced
set title 'decode tok/s per scenario (mean, 95% CI) - compare (cuda (NVIDIA H200, sm_90), 2026-11-22T01:24:06Z)'
set ylabel 'decode tokens / second'
set yrange [0:*]
set grid ytics
set style data histograms
set style histogram errorbars gap 2 lw 1.5
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by 30 right nomirror scale 0
set key top right
set bmargin 9
plot 'bench-compare-20261122-012728-decode.dat' using 3:4:5:xtic(2) title 'baseline' lc rgb '#4c72b0', '' using 6:7:8 title 'candidate' lc rgb '#dd8452'
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo noenhanced size 1730,520 background rgb 'white' font 'sans,10'
  set output 'bench-compare-20261122-012728-decode.png'
  replot
}

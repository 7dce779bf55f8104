# plots/acc_slo.gp: accuracy under latency SLOs for one (model, dataset), one line
# per mode, the (prefill SLO, decode SLO) pairs as categories on the x axis (the
# paper's per-dataset figure). Called by plots/make_plots.sh:
#
#   gnuplot -e "term_name='pngcairo'; nmodes=5; ncat=5; ymax=0.6; has_ref=1; ref=0.41;
#               colors='#d62728 #1f77b4 ...'; points='7 5 ...';
#               xt='(\"(0.8, 0.9)\" 0, \"(0.6, 0.8)\" 1, ...)'" \
#           -c plots/acc_slo.gp DATA OUT.png TITLE
#
# DATA: tab separated, one block per mode (blocks separated by two blank lines),
# each block's first line the legend title, then "<category index>\t<accuracy>".
# ref: the accuracy of `full` at (1.0, 1.0), drawn as a dashed line when has_ref.

if (term_name eq "pngcairo") {
    set terminal pngcairo size 1000,560 font "Sans,12" noenhanced
} else {
    set encoding utf8
    set terminal png size 1000,560 noenhanced
}
set output ARG2
set datafile separator "\t"

set title ARG3 noenhanced font ",14"
set xlabel "(prefill SLO, decode SLO)"
set ylabel "Accuracy"
set xrange [-0.4:ncat - 0.6]
set yrange [-0.03 * ymax:ymax]
set ytics 0, (ymax > 0.5 ? 0.1 : (ymax > 0.15 ? 0.05 : 0.02)), ymax nomirror
eval "set xtics " . xt
set xtics nomirror
set grid ytics lc rgb "#d0d0d0" lw 1
set key outside right top vertical Left reverse noenhanced spacing 1.3 samplen 3
set border 3
set lmargin 10

if (has_ref) {
    plot for [i = 1:nmodes] ARG1 index (i - 1) using 1:2 title columnhead(1) \
             with linespoints lw 2 ps 1.4 pt (word(points, i) + 0) lc rgb word(colors, i), \
         ref with lines dt 2 lw 2 lc rgb "#000000" title sprintf("full (1.0, 1.0): %.3f", ref)
} else {
    plot for [i = 1:nmodes] ARG1 index (i - 1) using 1:2 title columnhead(1) \
             with linespoints lw 2 ps 1.4 pt (word(points, i) + 0) lc rgb word(colors, i)
}

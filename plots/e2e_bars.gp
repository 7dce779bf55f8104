# plots/e2e_bars.gp: grouped bars for the end-to-end replay of one model: one group
# per trace skew (alpha), one bar per mode; used for both accuracy (res_<M>.txt)
# and SLO attainment (e2e_<M>/summary.csv). Called by plots/make_plots.sh:
#
#   gnuplot -e "term_name='pngcairo'; nmodes=8; ngroups=3; ymax=0.7; ytop=0.7;
#               colors='#d62728 ...'; xt='(\"skew -0.25\" 0, \"skew 0\" 1, ...)'" \
#           -c plots/e2e_bars.gp DATA OUT.png TITLE YLABEL
#
# DATA: tab separated, one block per mode (blocks separated by two blank lines),
# each block's first line the legend title, then "<group index>\t<value>".
# ytop: the highest y tic (ymax leaves room above it for the value labels).

if (term_name eq "pngcairo") {
    set terminal pngcairo size 1100,560 font "Sans,12" noenhanced
} else {
    set encoding utf8
    set terminal png size 1100,560 noenhanced
}
set output ARG2
set datafile separator "\t"

# bar i (1-based) of group g sits at g + (i - (nmodes + 1) / 2) * bw
bw = 0.84 / nmodes
xpos(g, i) = g + (i - (nmodes + 1) / 2.0) * bw

set title ARG3 noenhanced font ",14"
set ylabel ARG4 noenhanced
set xrange [-0.5:ngroups - 0.5]
set yrange [0:ymax]
eval "set xtics " . xt . " scale 0 font ',13'"
set ytics 0, (ytop > 0.5 ? 0.1 : 0.05), ytop nomirror
set grid ytics lc rgb "#d0d0d0" lw 1
set key outside right top vertical Left reverse noenhanced spacing 1.3
set border 3
set boxwidth bw * 0.92 absolute
set style fill solid 0.85 border lc rgb "#303030"
set lmargin 10

plot for [i = 1:nmodes] ARG1 index (i - 1) using (xpos($1, i)):2 title columnhead(1) \
         with boxes lc rgb word(colors, i), \
     for [i = 1:nmodes] ARG1 index (i - 1) using (xpos($1, i)):2:(sprintf("%.2f", $2)) notitle \
         with labels rotate by 90 left offset 0, 0.35 font ",9" tc rgb "#202020"

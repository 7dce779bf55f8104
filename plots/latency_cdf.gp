# plots/latency_cdf.gp: empirical CDF of a per-request latency (TTFT or TPOT) in
# one end-to-end replay (one model, one trace skew), one step line per mode.
# Called by plots/make_plots.sh:
#
#   gnuplot -e "term_name='pngcairo'; nmodes=8; logx=1; xmin=12.5; xmax=3400;
#               colors='#d62728 ...'" \
#           -c plots/latency_cdf.gp DATA OUT.png TITLE XLABEL
#
# DATA: tab separated, one block per mode (blocks separated by two blank lines),
# each block's first line the legend title, then "<value>\t<fraction <= value>",
# values ascending, starting with a (min, 0) point.

if (term_name eq "pngcairo") {
    set terminal pngcairo size 1100,680 font "Sans,12" noenhanced
} else {
    set encoding utf8
    set terminal png size 1100,680 noenhanced
}
set output ARG2
set datafile separator "\t"

set title ARG3 noenhanced font ",14"
set xlabel ARG4 noenhanced
set ylabel "Fraction of requests"
if (logx) {
    set logscale x 10
    lo = xmin / 1.15
    hi = xmax * 1.15
    set xrange [lo:hi]
    # tics at 1, 2, 5 times the powers of ten in range
    set xtics () nomirror
    do for [e = floor(log10(lo)) : ceil(log10(hi))] {
        do for [m in "1 2 5"] {
            t = (m + 0) * 10.0 ** e
            if (t >= lo && t <= hi) { set xtics add (sprintf("%g", t) t) }
        }
    }
    set mxtics 10
} else {
    pad = (xmax > xmin ? (xmax - xmin) * 0.03 : (xmax > 0 ? xmax * 0.05 : 1))
    set xrange [(xmin - pad < 0 && xmin >= 0 ? 0 : xmin - pad):xmax + pad]
    set xtics nomirror
}
set yrange [0:1.02]
set ytics 0, 0.2, 1 nomirror
set grid xtics ytics lc rgb "#d8d8d8" lw 1
set key outside below center vertical maxrows 4 Left reverse noenhanced spacing 1.2 width -4 height 1.5
set border 3
set lmargin 10

plot for [i = 1:nmodes] ARG1 index (i - 1) using 1:2 title columnhead(1) \
         with steps lw 2 lc rgb word(colors, i)

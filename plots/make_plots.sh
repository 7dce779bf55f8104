#!/usr/bin/env bash
# plots/make_plots.sh [RESULTS_DIR=results] [OUT_DIR=plots]
#
# Makes every figure the files in RESULTS_DIR allow (see plots/README.md):
#   OUT_DIR/<model>/acc_<DS>.png               from RESULTS_DIR/<model>_<DS>.txt
#   OUT_DIR/<M>/e2e_accuracy.png               from RESULTS_DIR/res_<M>.txt
#                                              (else the accuracy column of summary.csv)
#   OUT_DIR/<M>/e2e_attainment.png             from RESULTS_DIR/e2e_<M>/summary.csv
#   OUT_DIR/<M>/latency_cdf_alpha=<a>.png      from RESULTS_DIR/e2e_<M>/alpha=<a>/<mode>.jsonl
#   OUT_DIR/<M>/tpot_cdf_alpha=<a>.png         (same files)
#
# stdout: the path of each PNG written, one a line. stderr: one line per thing
# skipped and why, notes, errors. Only RESULTS_DIR itself is scanned (and its
# e2e_<M>/ folders), not other subfolders: pass such a folder as RESULTS_DIR.
#
# Every input line is checked before any figure is drawn; a malformed line is an
# error "FILE:LINE: what is wrong" and the script exits 1 having written nothing.
# Blank lines and lines starting with '#' (the .txt files) are allowed. Exit 2:
# usage or environment error (no gnuplot, no RESULTS_DIR).
# Each PNG is written to a temporary name next to it, then renamed.
#
# Needs bash, gnuplot (pngcairo terminal, else png), awk, sort. No Python.
# MAKE_PLOTS_TERM=png forces the libgd png terminal (for testing the fallback).

set -euo pipefail
export LC_ALL=C

PROG=make_plots.sh
usage() { echo "usage: plots/make_plots.sh [RESULTS_DIR=results] [OUT_DIR=plots]"; }
case "${1-}" in -h | --help) usage; exit 0 ;; esac
if [ "$#" -gt 2 ]; then usage >&2; exit 2; fi
RES=${1:-results}
OUT=${2:-plots}
while [[ $RES == */ && $RES != / ]]; do RES=${RES%/}; done
while [[ $OUT == */ && $OUT != / ]]; do OUT=${OUT%/}; done
GP=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit "${DIE_RC:-1}"; }
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }
SKIPS=()
skip() { SKIPS+=("$*"); }

command -v gnuplot >/dev/null 2>&1 || DIE_RC=2 die "gnuplot not found (apt-get install gnuplot-nox)"
[ -d "$RES" ] || DIE_RC=2 die "results directory '$RES' does not exist"
for s in acc_slo.gp e2e_bars.gp latency_cdf.gp; do
    [ -f "$GP/$s" ] || DIE_RC=2 die "missing $GP/$s"
done
if [ -n "${MAKE_PLOTS_TERM-}" ]; then
    TERM_NAME=$MAKE_PLOTS_TERM
elif gnuplot -e 'set terminal pngcairo' </dev/null >/dev/null 2>&1; then
    TERM_NAME=pngcairo
elif gnuplot -e 'set terminal png' </dev/null >/dev/null 2>&1; then
    TERM_NAME=png
else
    DIE_RC=2 die "this gnuplot has neither the pngcairo nor the png terminal"
fi

# gnuplot runs in a UTF-8 locale when there is one (titles hold an em dash; the
# png terminal converts text with iconv); numbers are unaffected (C.UTF-8 has a
# decimal point)
GP_LC=$(locale -a 2>/dev/null | grep -i -m1 -E "^c\.utf-?8$" || true)
GP_LC=${GP_LC:-C}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/make_plots.XXXXXX")
PENDING=""
trap 'rm -rf -- "$TMP"; if [ -n "$PENDING" ]; then rm -f -- "$PENDING"; fi' EXIT
shopt -s nullglob

DSS=(ARC_E OBQA PIQA SCIQ Octopus LlamaTouch)

# ---------------------------------------------------------------------------
# awk: shared helpers (POSIX awk; mawk and gawk)
# ---------------------------------------------------------------------------
AWK_LIB='
function isnum(s) { return s ~ /^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ }
function num(s) { return sprintf("%.6g", s + 0) }
# a malformed line: "FILE:LINE: message", the line itself below (at most 20 a file)
function bad(msg) {
    nbad++
    if (nbad <= 20) {
        printf "%s:%d: %s\n    > %s%s\n", F, FNR, msg, substr($0, 1, 160), (length($0) > 160 ? " ..." : "") > "/dev/stderr"
    }
}
function finish_bad() {
    if (nbad > 20) printf "%s: ... and %d more malformed lines\n", F, nbad - 20 > "/dev/stderr"
}
# styles: the artifact order of modes, fixed colours and point types
function style_init(   i, n) {
    n = split("Ours LayerReduction LaCo ShortGPT AttnDrop Lingua2+Contextual LLMPruner Off-The-Shelf full", CAN, " ")
    split("#d62728 #1f77b4 #ff7f0e #2ca02c #9467bd #8c564b #e377c2 #7f7f7f #000000", CCOL, " ")
    split("7 5 9 11 13 15 4 6 1", CPT, " ")
    for (i = 1; i <= n; i++) RANK[CAN[i]] = i
    NX = split("#17becf #bcbd22 #393b79 #637939 #8c6d31 #843c39 #7b4173 #3182bd #e6550d #31a354", XCOL, " ")
}
function before(a, b,   ra, rb) {  # mode a sorts before mode b
    ra = (a in RANK) ? RANK[a] : 1000; rb = (b in RANK) ? RANK[b] : 1000
    return ra != rb ? ra < rb : a < b
}
# sorts modes MO[1..n] in place and sets COL[i], PT[i]
function order_modes(n,   i, j, t, x) {
    for (i = 2; i <= n; i++) {
        t = MO[i]
        for (j = i - 1; j >= 1 && before(t, MO[j]); j--) MO[j + 1] = MO[j]
        MO[j + 1] = t
    }
    x = 0
    for (i = 1; i <= n; i++) {
        if (MO[i] in RANK) { COL[i] = CCOL[RANK[MO[i]]]; PT[i] = CPT[RANK[MO[i]]] }
        else { COL[i] = XCOL[x % NX + 1]; PT[i] = (x % 6) * 2 + 2; x++ }
    }
}
function styles(n,   i, c, p) {
    c = p = ""
    for (i = 1; i <= n; i++) { c = c (i > 1 ? " " : "") COL[i]; p = p (i > 1 ? " " : "") PT[i] }
    return "colors=\047" c "\047; points=\047" p "\047"
}
# a y axis top that leaves room (rounded up to 0.1)
function ceil10(x,   y) { y = int(x * 10); if (y < x * 10 - 1e-9) y++; return y / 10 }
'

# ---------------------------------------------------------------------------
# awk: validators; each writes the deduplicated rows (last line wins) to stdout
# and exits 1 when a line is malformed
# ---------------------------------------------------------------------------

# <DS> <model> <mode> <prefill_SLO> <decode_SLO> <acc>  ->  mode \t pre \t dec \t acc
AWK_CHECK_ACC='
BEGIN { F = ENVIRON["F"]; DS = ENVIRON["DS"]; MODEL = ENVIRON["MODEL"] }
{ sub(/\r$/, "") }
/^[ \t]*$/ || /^[ \t]*#/ { next }
{
    if (NF != 6) { bad("expected 6 fields <DS> <model> <mode> <prefill_SLO> <decode_SLO> <acc>, found " NF); next }
    if ($1 != DS) { bad("dataset \"" $1 "\" is not the file name\047s " DS); next }
    if ($2 != MODEL) { bad("model \"" $2 "\" is not the file name\047s " MODEL); next }
    if (!isnum($4) || !isnum($5)) { bad("SLO \"" $4 " " $5 "\" is not two numbers"); next }
    if ($4 + 0 <= 0 || $4 + 0 > 1 || $5 + 0 <= 0 || $5 + 0 > 1) { bad("SLO (" $4 ", " $5 ") outside (0, 1]"); next }
    if (!isnum($6)) { bad("accuracy \"" $6 "\" is not a number"); next }
    if ($6 + 0 < 0 || $6 + 0 > 1) { bad("accuracy " $6 " outside [0, 1]"); next }
    k = $3 "\t" num($4) "\t" num($5)
    if (!(k in val)) ord[++n] = k
    val[k] = num($6)
}
END { finish_bad(); if (nbad) exit 1; for (i = 1; i <= n; i++) print ord[i] "\t" val[ord[i]] }
'

# alpha=<a> <M> <mode> <acc>  ->  alpha \t mode \t acc
AWK_CHECK_RES='
BEGIN { F = ENVIRON["F"]; MODEL = ENVIRON["MODEL"] }
{ sub(/\r$/, "") }
/^[ \t]*$/ || /^[ \t]*#/ { next }
{
    if (NF != 4) { bad("expected 4 fields alpha=<a> <model> <mode> <acc>, found " NF); next }
    a = substr($1, 7)
    if (substr($1, 1, 6) != "alpha=" || !isnum(a)) { bad("first field \"" $1 "\" is not alpha=<number>"); next }
    if ($2 != MODEL) { bad("model \"" $2 "\" is not the file name\047s " MODEL); next }
    if (!isnum($4)) { bad("accuracy \"" $4 "\" is not a number"); next }
    if ($4 + 0 < 0 || $4 + 0 > 1) { bad("accuracy " $4 " outside [0, 1]"); next }
    k = num(a) "\t" $3
    if (!(k in val)) ord[++n] = k
    val[k] = num($4)
}
END { finish_bad(); if (nbad) exit 1; for (i = 1; i <= n; i++) print ord[i] "\t" val[ord[i]] }
'

# summary.csv (columns found by header name)  ->  alpha \t mode \t attainment \t accuracy
# (accuracy "-" where the file has no accuracy column)
AWK_CHECK_SUMMARY='
BEGIN { F = ENVIRON["F"]; FS = "," }
{ sub(/\r$/, "") }
FNR == 1 {
    nh = NF
    for (i = 1; i <= NF; i++) { h = $i; gsub(/^[ \t]+|[ \t]+$/, "", h); col[h] = i }
    miss = ""
    if (!("alpha" in col)) miss = miss " alpha"
    if (!("mode" in col)) miss = miss " mode"
    if (!("attainment" in col)) miss = miss " attainment"
    if (miss != "") { bad("header lacks column(s):" miss); finish_bad(); hdr_bad = 1; exit 1 }
    ca = col["alpha"]; cm = col["mode"]; ct = col["attainment"]; cc = ("accuracy" in col) ? col["accuracy"] : 0
    next
}
/^[ \t]*$/ { next }
{
    if (NF != nh) { bad("expected " nh " comma-separated fields as in the header, found " NF); next }
    a = $ca; m = $cm; t = $ct; c = cc ? $cc : "-"
    gsub(/^[ \t]+|[ \t]+$/, "", a); gsub(/^[ \t]+|[ \t]+$/, "", m); gsub(/^[ \t]+|[ \t]+$/, "", t); gsub(/^[ \t]+|[ \t]+$/, "", c)
    if (!isnum(a)) { bad("alpha \"" a "\" is not a number"); next }
    if (m == "" || m ~ /[ \t]/) { bad("mode \"" m "\" is empty or has blanks"); next }
    if (t == "") { unmeasured++; next } # e2e --latency none: no attainment (its accuracy is in res_<M>.txt)
    if (!isnum(t)) { bad("attainment \"" t "\" is not a number"); next }
    if (t + 0 < 0 || t + 0 > 1) { bad("attainment " t " outside [0, 1]"); next }
    if (cc) {
        if (!isnum(c)) { bad("accuracy \"" c "\" is not a number"); next }
        if (c + 0 < 0 || c + 0 > 1) { bad("accuracy " c " outside [0, 1]"); next }
        c = num(c)
    }
    k = num(a) "\t" m
    if (!(k in val)) ord[++n] = k
    val[k] = num(t) "\t" c
}
END {
    if (hdr_bad) exit 1
    if (FNR == 0) { F_EMPTY = 1 }
    finish_bad(); if (nbad) exit 1
    if (unmeasured) printf "make_plots.sh: %s: %d row(s) without attainment (e2e --latency none) left out of the attainment figure\n", F, unmeasured > "/dev/stderr"
    for (i = 1; i <= n; i++) print ord[i] "\t" val[ord[i]]
}
'

# one JSON object a line  ->  ttft \t tpot \t met \t correct   (null kept as "null")
AWK_CHECK_JSONL='
# the value of "key": in this line; JT = num, str, bool, null, other or absent
function jget(key,   s, i, rest, c, v) {
    s = $0
    while ((i = index(s, "\"" key "\"")) > 0) {
        rest = substr(s, i + length(key) + 2)
        if (match(rest, /^[ \t]*:[ \t]*/)) {
            rest = substr(rest, RLENGTH + 1)
            if (substr(rest, 1, 1) == "\"") {
                rest = substr(rest, 2); c = index(rest, "\"")
                if (!c) { JT = "other"; return "" }
                JT = "str"; return substr(rest, 1, c - 1)
            }
            match(rest, /^[^,} \t]*/); v = substr(rest, 1, RLENGTH)
            if (isnum(v)) JT = "num"; else if (v == "true" || v == "false") JT = "bool"
            else if (v == "null") JT = "null"; else JT = "other"
            return v
        }
        s = rest
    }
    JT = "absent"; return ""
}
# the value of key when its type is one of types (e.g. "num null"), else a malformed line
function need(key, types,   v, want) {
    v = jget(key)
    if (index(" " types " ", " " JT " ")) return v
    want = types
    sub(/num/, "a number", want); sub(/ null/, " or null", want); sub(/bool/, "true or false", want); sub(/str/, "a string", want)
    if (JT == "absent") bad("no \"" key "\" key")
    else if (JT == "str") bad("\"" key "\" is \"" v "\", not " want)
    else bad("\"" key "\" is " (v == "" ? "malformed" : v) ", not " want)
    ok = 0; return ""
}
BEGIN { F = ENVIRON["F"]; MODE = ENVIRON["MODE"] }
{ sub(/\r$/, "") }
/^[ \t]*$/ { next }
{
    if ($0 !~ /^[ \t]*\{.*\}[ \t]*$/) { bad("not a JSON object"); next }
    ok = 1
    tt = need("ttft_ms", "num null"); if (!ok) next
    tp = need("tpot_ms", "num null"); if (!ok) next
    me = need("met", "bool"); if (!ok) next
    co = need("correct", "bool"); if (!ok) next
    mo = need("mode", "str"); if (!ok) next
    if (mo != MODE) { bad("\"mode\" is \"" mo "\", not the file name\047s " MODE); next }
    if ((tt != "null" && tt + 0 < 0) || (tp != "null" && tp + 0 < 0)) { bad("negative latency"); next }
    out[++n] = (tt == "null" ? "null" : num(tt)) "\t" (tp == "null" ? "null" : num(tp)) "\t" (me == "true") "\t" (co == "true")
}
END { finish_bad(); if (nbad) exit 1; for (i = 1; i <= n; i++) print out[i] }
'

# ---------------------------------------------------------------------------
# awk: figure data. Each reads validated rows, writes gnuplot blocks to
# ENVIRON["DAT"] and prints the gnuplot -e variables (or SKIP <why>).
# ---------------------------------------------------------------------------

# mode \t pre \t dec \t acc  ->  per-dataset accuracy figure
AWK_FIG_ACC='
BEGIN { FS = "\t"; DAT = ENVIRON["DAT"]; EXCL = ENVIRON["EXCL"]; style_init() }
{
    mode = $1; pre = $2; dec = $3; acc = $4
    if (mode ~ /^Level-/ || index(mode, "+score") || index(mode, "+random") || index(mode, "+llmlingua2")) {
        print mode >> EXCL; nexcl++; next
    }
    if (mode == "full" && pre == 1 && dec == 1) { ref = acc; has_ref = 1; next }
    if (!(mode in seen)) { seen[mode] = 1; MO[++nm] = mode }
    c = pre "\t" dec
    if (!(c in cseen)) { cseen[c] = 1; CP[++nc] = pre; CD[nc] = dec }
    v[mode, c] = acc
    if (acc + 0 > mx) mx = acc + 0
}
function lab(x,   s) { s = sprintf("%.1f", x); return (s + 0 == x + 0) ? s : sprintf("%g", x) }
END {
    if (nm == 0) {
        if (has_ref) print "SKIP only the full (1.0, 1.0) reference, no mode under a tighter SLO"
        else if (nexcl) print "SKIP only modes left out of per-dataset figures"
        else print "SKIP no data lines"
        exit
    }
    # SLO pairs in the artifact order: prefill SLO descending, then decode SLO descending
    for (i = 2; i <= nc; i++) {
        p = CP[i]; d = CD[i]
        for (j = i - 1; j >= 1 && (CP[j] + 0 < p + 0 || (CP[j] + 0 == p + 0 && CD[j] + 0 < d + 0)); j--) { CP[j + 1] = CP[j]; CD[j + 1] = CD[j] }
        CP[j + 1] = p; CD[j + 1] = d
    }
    order_modes(nm)
    for (i = 1; i <= nm; i++) {
        print MO[i] > DAT
        for (j = 1; j <= nc; j++) if ((MO[i], CP[j] "\t" CD[j]) in v) print (j - 1) "\t" v[MO[i], CP[j] "\t" CD[j]] > DAT
        print "\n" > DAT
    }
    xt = "("
    for (j = 1; j <= nc; j++) xt = xt (j > 1 ? ", " : "") "\"(" lab(CP[j]) ", " lab(CD[j]) ")\" " (j - 1)
    xt = xt ")"
    if (has_ref && ref + 0 > mx) mx = ref + 0
    ymax = ceil10(mx * 1.1 + 0.02); if (ymax > 1.05) ymax = 1.05
    printf "nmodes=%d; ncat=%d; ymax=%s; has_ref=%d; ref=%s; %s; xt=\047%s\047\n", nm, nc, ymax, has_ref, (has_ref ? ref : 0), styles(nm), xt
}
'

# alpha \t mode \t value  ->  grouped bars (groups: alpha ascending)
AWK_FIG_BARS='
BEGIN { FS = "\t"; DAT = ENVIRON["DAT"]; style_init() }
$3 == "-" { next }
{
    a = $1; mode = $2
    if (!(mode in seen)) { seen[mode] = 1; MO[++nm] = mode }
    if (!(a in aseen)) { aseen[a] = 1; A[++na] = a }
    v[mode, a] = $3
    if ($3 + 0 > mx) mx = $3 + 0
}
END {
    if (nm == 0) { print "SKIP no values"; exit }
    for (i = 2; i <= na; i++) { t = A[i]; for (j = i - 1; j >= 1 && A[j] + 0 > t + 0; j--) A[j + 1] = A[j]; A[j + 1] = t }
    order_modes(nm)
    for (i = 1; i <= nm; i++) {
        print MO[i] > DAT
        for (j = 1; j <= na; j++) if ((MO[i], A[j]) in v) print (j - 1) "\t" v[MO[i], A[j]] > DAT
        print "\n" > DAT
    }
    xt = "("
    for (j = 1; j <= na; j++) xt = xt (j > 1 ? ", " : "") "\"skew " A[j] "\" " (j - 1)
    xt = xt ")"
    # y tics up to ytop (1 for a fraction such as attainment); ymax leaves
    # about a tenth of the height above the highest bar for its value label
    ytop = ceil10(mx); if (ytop < 0.1) ytop = 0.1; if (ytop > 1) ytop = 1
    if (ENVIRON["UNIT"] == "1") ytop = 1
    ymax = mx / 0.88; if (ymax < ytop + 0.005) ymax = ytop + 0.005
    printf "nmodes=%d; ngroups=%d; ymax=%.4f; ytop=%s; %s; xt=\047%s\047\n", nm, na, ymax, ytop, styles(nm), xt
}
'

# mode \t file  ->  mode \t file \t colour, in the figure order
AWK_ORDER='
BEGIN { FS = "\t"; style_init() }
{ MO[++n] = $1; F_OF[$1] = $2 }
END { order_modes(n); for (i = 1; i <= n; i++) print MO[i] "\t" F_OF[MO[i]] "\t" COL[i] }
'

# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------
NPNG=0
# render VARS SCRIPT DATA OUT.png TITLE [LABEL]
render() {
    local vars=$1 script=$2 data=$3 out=$4
    shift 4
    local dir=${out%/*}
    mkdir -p -- "$dir"
    PENDING="$dir/.${out##*/}.tmp.$$"
    if ! LC_ALL=$GP_LC gnuplot -e "term_name='$TERM_NAME'; $vars" -c "$GP/$script" "$data" "$PENDING" "$@" 2>"$TMP/gp.err"; then
        cat "$TMP/gp.err" >&2
        die "gnuplot ($script) failed drawing $out"
    fi
    if [ -s "$TMP/gp.err" ]; then
        P="$PROG: gnuplot ($script, $out): " awk '{ print ENVIRON["P"] $0 }' <"$TMP/gp.err" >&2
    fi
    [ -s "$PENDING" ] || die "gnuplot ($script) wrote no image for $out"
    mv -f -- "$PENDING" "$out"
    PENDING=""
    printf '%s\n' "$out"
    NPNG=$((NPNG + 1))
}

# ---------------------------------------------------------------------------
# 1. find and check every input (nothing is drawn before all of it passes)
# ---------------------------------------------------------------------------
NBADFILES=0
check() {  # check AWKPROG INFILE OUTFILE [VAR=VALUE ...]: runs a validator
    local prog=$1 in=$2 out=$3
    shift 3
    if ! env F="$in" "$@" awk "$AWK_LIB$prog" <"$in" >"$out"; then
        NBADFILES=$((NBADFILES + 1))
    fi
}
first_word() { awk 'NF && $1 !~ /^#/ { print $1; exit }' <"$1"; }

ACC_FILES=()  # "model \t DS \t file \t tsv"
declare -A E2E=()  # model -> 1
IGNORED=()
n=0
for f in "$RES"/*.txt; do
    [ -f "$f" ] || continue
    b=${f##*/}
    if [[ $b == res_*.txt && $(first_word "$f") == alpha=* ]]; then
        m=${b#res_}; E2E[${m%.txt}]=1; continue
    fi
    ds=""
    for d in "${DSS[@]}"; do
        if [[ $b == *_"$d".txt ]]; then ds=$d; break; fi
    done
    if [ -n "$ds" ]; then
        model=${b%_"$ds".txt}
        if [ -z "$model" ] || [ "$model" = . ] || [ "$model" = .. ]; then
            printf '%s: no model name before _%s.txt\n' "$f" "$ds" >&2
            NBADFILES=$((NBADFILES + 1)); continue
        fi
        n=$((n + 1))
        check "$AWK_CHECK_ACC" "$f" "$TMP/acc.$n.tsv" DS="$ds" MODEL="$model"
        ACC_FILES+=("$model"$'\t'"$ds"$'\t'"$f"$'\t'"$TMP/acc.$n.tsv")
    elif [[ $b == res_*.txt ]]; then
        m=${b#res_}; E2E[${m%.txt}]=1
    else
        IGNORED+=("$b")
    fi
done
for d in "$RES"/e2e_*/; do
    b=${d%/}; b=${b##*/}
    [ -n "${b#e2e_}" ] && E2E[${b#e2e_}]=1
done

# e2e inputs, per model k: $TMP/e2e.k/{res.tsv,sum.tsv,alphas}, alpha j: modes list
E2E_MODELS=()
if [ "${#E2E[@]}" -gt 0 ]; then
    mapfile -t E2E_MODELS < <(printf '%s\n' "${!E2E[@]}" | sort)
fi
k=0
for M in "${E2E_MODELS[@]}"; do
    k=$((k + 1))
    w="$TMP/e2e.$k"
    mkdir -p "$w"
    : >"$w/alphas"
    if [ -f "$RES/res_$M.txt" ]; then
        check "$AWK_CHECK_RES" "$RES/res_$M.txt" "$w/res.tsv" MODEL="$M"
    fi
    e="$RES/e2e_$M"
    if [ -f "$e/summary.csv" ]; then
        check "$AWK_CHECK_SUMMARY" "$e/summary.csv" "$w/sum.tsv"
    fi
    j=0
    for ad in "$e"/alpha=*/; do
        ad=${ad%/}
        a=${ad##*/alpha=}
        if ! [[ $a =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)$ ]]; then
            skip "$ad: folder name is not alpha=<number>"
            continue
        fi
        j=$((j + 1))
        : >"$w/modes.$j"
        for jf in "$ad"/*.jsonl; do
            mode=${jf##*/}; mode=${mode%.jsonl}
            i=$(($(wc -l <"$w/modes.$j") + 1))
            check "$AWK_CHECK_JSONL" "$jf" "$w/req.$j.$i.tsv" MODE="$mode"
            printf '%s\t%s\n' "$mode" "$w/req.$j.$i.tsv" >>"$w/modes.$j"
        done
        printf '%s\t%s\n' "$a" "$j" >>"$w/alphas"
    done
done

if [ "$NBADFILES" -gt 0 ]; then
    die "malformed input in $NBADFILES file(s) (listed above); no figures written"
fi

# ---------------------------------------------------------------------------
# 2. per-dataset accuracy under SLOs: OUT/<model>/acc_<DS>.png
# ---------------------------------------------------------------------------
EXCL="$TMP/excluded"
: >"$EXCL"
declare -A ACC_SKIP=()  # "model \t reason" -> "DS DS ..."
for entry in "${ACC_FILES[@]}"; do
    IFS=$'\t' read -r model ds f tsv <<<"$entry"
    dat="$TMP/acc.dat"
    vars=$(DAT="$dat" EXCL="$EXCL" awk "$AWK_LIB$AWK_FIG_ACC" <"$tsv")
    if [[ $vars == SKIP* ]]; then
        key="$model"$'\t'"${vars#SKIP }"
        ACC_SKIP[$key]="${ACC_SKIP[$key]-}${ACC_SKIP[$key]+ }$ds"
        continue
    fi
    render "$vars" acc_slo.gp "$dat" "$OUT/$model/acc_$ds.png" "$ds — $model"
done
if [ "${#ACC_FILES[@]}" -eq 0 ]; then
    skip "per-dataset accuracy figures: no <model>_<DS>.txt in $RES (DS: ${DSS[*]})"
fi
for key in "${!ACC_SKIP[@]}"; do
    IFS=$'\t' read -r model why <<<"$key"
    skip "acc_<DS>.png for $model, DS ${ACC_SKIP[$key]}: $why"
done
if [ -s "$EXCL" ]; then
    skip "modes left out of the per-dataset figures (Level-*, *+score*, *+random*, *+llmlingua2*): $(sort -u "$EXCL" | tr '\n' ' ' | sed 's/ $//') ($(wc -l <"$EXCL") line(s))"
fi

# ---------------------------------------------------------------------------
# 3. end-to-end replays: OUT/<M>/e2e_accuracy.png, e2e_attainment.png, CDFs
# ---------------------------------------------------------------------------
if [ "${#E2E_MODELS[@]}" -eq 0 ]; then
    skip "end-to-end figures: no res_<model>.txt or e2e_<model>/ in $RES"
fi
k=0
for M in "${E2E_MODELS[@]}"; do
    k=$((k + 1))
    w="$TMP/e2e.$k"
    e="$RES/e2e_$M"
    dat="$TMP/bars.dat"

    # accuracy: res_<M>.txt, else the accuracy column of summary.csv
    src=""
    if [ -f "$w/res.tsv" ]; then
        cp "$w/res.tsv" "$TMP/bars.in"; src="res_$M.txt"
    elif [ -f "$w/sum.tsv" ] && awk -F'\t' '$4 != "-" { f = 1 } END { exit !f }' "$w/sum.tsv"; then
        awk -F'\t' 'BEGIN { OFS = "\t" } { print $1, $2, $4 }' "$w/sum.tsv" >"$TMP/bars.in"; src="e2e_$M/summary.csv"
        note "e2e_accuracy.png for $M: no res_$M.txt, using the accuracy column of $src"
    fi
    if [ -n "$src" ]; then
        vars=$(DAT="$dat" awk "$AWK_LIB$AWK_FIG_BARS" <"$TMP/bars.in")
        if [[ $vars == SKIP* ]]; then
            skip "e2e_accuracy.png for $M: $src has ${vars#SKIP }"
        else
            render "$vars" e2e_bars.gp "$dat" "$OUT/$M/e2e_accuracy.png" \
                "End-to-end accuracy — $M" "Accuracy"
        fi
    else
        skip "e2e_accuracy.png for $M: no res_$M.txt (nor an accuracy column in e2e_$M/summary.csv)"
    fi

    # SLO attainment: summary.csv
    if [ -f "$w/sum.tsv" ]; then
        awk -F'\t' 'BEGIN { OFS = "\t" } { print $1, $2, $3 }' "$w/sum.tsv" >"$TMP/bars.in"
        vars=$(DAT="$dat" UNIT=1 awk "$AWK_LIB$AWK_FIG_BARS" <"$TMP/bars.in")
        if [[ $vars == SKIP* ]]; then
            skip "e2e_attainment.png for $M: e2e_$M/summary.csv has ${vars#SKIP }"
        else
            render "$vars" e2e_bars.gp "$dat" "$OUT/$M/e2e_attainment.png" \
                "End-to-end SLO attainment — $M" "SLO attainment"
        fi
    else
        skip "e2e_attainment.png for $M: no $e/summary.csv"
    fi

    # latency CDFs per alpha
    if [ ! -s "$w/alphas" ]; then
        skip "latency CDFs for $M: no $e/alpha=<a>/<mode>.jsonl"
    fi
    while IFS=$'\t' read -r a j; do
        if [ ! -s "$w/modes.$j" ]; then
            skip "latency CDFs for $M, alpha=$a: no <mode>.jsonl in $e/alpha=$a"
            continue
        fi
        awk "$AWK_LIB$AWK_ORDER" <"$w/modes.$j" >"$TMP/order"
        for metric in ttft tpot; do
            if [ "$metric" = ttft ]; then
                c=1; name="latency_cdf"; what="TTFT"; xl="Time to first token (ms)"
            else
                c=2; name="tpot_cdf"; what="TPOT"; xl="Time per output token (ms)"
            fi
            # per mode: the sorted values, how many, the share that met the SLO / was right
            MODES=(); COLS=(); NV=(); NT=(); STATS=(); FILES=(); empty=""
            i=0
            while IFS=$'\t' read -r mode tsv col; do
                i=$((i + 1))
                awk -F'\t' -v c="$c" '$c != "null" { print $c }' <"$tsv" | sort -g >"$TMP/vals.$i"
                nv=$(wc -l <"$TMP/vals.$i")
                total=$(wc -l <"$tsv")
                if [ "$nv" -eq 0 ]; then
                    if [ "$total" -eq 0 ]; then empty="$empty $mode (empty file)"; else empty="$empty $mode (all null)"; fi
                    continue
                fi
                if [ "$nv" -lt "$total" ]; then
                    note "${name}_alpha=$a.png for $M: $((total - nv)) of $total $mode requests have a null ${metric}_ms, left out"
                fi
                MODES+=("$mode"); COLS+=("$col"); NV+=("$nv"); NT+=("$total")
                STATS+=("$(awk -F'\t' '{ met += $3; cor += $4 }
                    END { printf "SLO met %.0f%%, correct %.0f%%", 100 * met / NR, 100 * cor / NR }' <"$tsv")")
                FILES+=("$TMP/vals.$i")
            done <"$TMP/order"
            if [ -n "$empty" ]; then
                skip "${name}_alpha=$a.png for $M: no ${metric}_ms values for$empty"
            fi
            nm=${#MODES[@]}
            if [ "$nm" -eq 0 ]; then continue; fi
            # the same n for every mode: say it once, in the title
            same=1
            for ((i = 0; i < nm; i++)); do
                if [ "${NV[i]}" != "${NV[0]}" ] || [ "${NT[i]}" != "${NV[i]}" ]; then same=0; fi
            done
            : >"$TMP/cdf.dat"
            colors=""
            for ((i = 0; i < nm; i++)); do
                if [ "$same" = 1 ]; then
                    title="${MODES[i]} (${STATS[i]})"
                elif [ "${NV[i]}" = "${NT[i]}" ]; then
                    title="${MODES[i]} (n=${NV[i]}, ${STATS[i]})"
                else
                    title="${MODES[i]} (n=${NV[i]} of ${NT[i]}, ${STATS[i]})"
                fi
                {
                    printf '%s\n' "$title"
                    awk -v n="${NV[i]}" 'NR == 1 { print $1 "\t0" } { print $1 "\t" NR / n }' <"${FILES[i]}"
                    printf '\n\n'
                } >>"$TMP/cdf.dat"
                colors="$colors${colors:+ }${COLS[i]}"
            done
            ntitle=""
            if [ "$same" = 1 ]; then ntitle=", ${NV[0]} requests per mode"; fi
            # log x when the values span more than 20x
            read -r xmin xmax logx < <(cat "${FILES[@]}" | awk '
                NR == 1 || $1 + 0 < lo { lo = $1 + 0 } NR == 1 || $1 + 0 > hi { hi = $1 + 0 }
                END { print lo, hi, (lo > 0 && hi / lo > 20) ? 1 : 0 }')
            render "nmodes=$nm; logx=$logx; xmin=$xmin; xmax=$xmax; colors='$colors'" \
                latency_cdf.gp "$TMP/cdf.dat" "$OUT/$M/${name}_alpha=$a.png" \
                "$what CDF — $M, skew $a (alpha=$a)$ntitle" "$xl"
        done
    done < <(sort -t "$(printf "\t")" -k1,1g "$w/alphas")
done

# ---------------------------------------------------------------------------
# 4. what was left out
# ---------------------------------------------------------------------------
if [ "${#IGNORED[@]}" -gt 0 ]; then
    skip "not results files (neither <model>_<DS>.txt nor res_<model>.txt): ${IGNORED[*]}"
fi
sub=$(find "$RES" -mindepth 2 -maxdepth 4 -type f \( -name 'res_*.txt' -o -name '*_ARC_E.txt' -o -name '*_OBQA.txt' \
    -o -name '*_PIQA.txt' -o -name '*_SCIQ.txt' -o -name '*_Octopus.txt' -o -name '*_LlamaTouch.txt' \) \
    -not -path "$RES/e2e_*" 2>/dev/null | sed 's|/[^/]*$||' | sort -u |
    R="$RES/" awk '{ if (index($0, ENVIRON["R"]) == 1) $0 = substr($0, length(ENVIRON["R"]) + 1); printf "%s%s", (NR > 1 ? " " : ""), $0 }')
if [ -n "$sub" ]; then
    skip "subfolders not scanned (pass one as RESULTS_DIR): $sub"
fi
for s in "${SKIPS[@]}"; do
    printf '%s: skipped %s\n' "$PROG" "$s" >&2
done
note "$NPNG figure(s) written under $OUT"
exit 0

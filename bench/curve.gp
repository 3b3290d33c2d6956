# SPDX-License-Identifier: MIT
#
# Draw curvebench's CSV: one panel per workload, throughput against local
# memory (% of the working set), one line per system (all-local as a flat
# dashed reference, each sdrsa policy, Linux swap); both axes logarithmic,
# since all-local is orders of magnitude above the rest and the fractions
# halve.
#
#   gnuplot -c bench/curve.gp CURVE.csv CURVE.png ["subtitle"]
#
# Columns used: 1 workload, 2 system, 3 local_pct, 8 ops_per_s. The systems
# are read from the CSV, so a new policy gets its line with no change here.
# Failed points are NaN in the CSV and leave a gap.
if (ARGC < 2) {
	print "usage: gnuplot -c bench/curve.gp CURVE.csv CURVE.png [subtitle]"
	exit status 2
}
csv = ARG1
subtitle = ARGC >= 3 ? ARG3 : ""

set datafile separator ","
# Distinct names in a column, in order of first appearance.
column_values(c, filter) = system(sprintf( \
	"awk -F, 'NR > 1 %s { print $%d }' '%s' | awk '!seen[$0]++' | tr '\\n' ' '", filter, c, csv))
workloads = column_values(1, "")
systems = column_values(2, "&& $2 != \"all-local\"")
nw = words(workloads)
killed_in(w) = int(system(sprintf("awk -F, '$1 == \"%s\" && $12 == \"killed\"' '%s' | wc -l", w, csv)))
if (nw == 0) {
	print sprintf("curve.gp: no data in %s", csv)
	exit status 1
}

set terminal pngcairo size 1400, (nw > 2 ? 1100 : 600) font "sans,11" noenhanced
set output ARG2
ncols = nw > 1 ? 2 : 1
nrows = (nw + 1) / 2
set multiplot layout nrows, ncols title \
	"Throughput against local memory: sdrsa policies, Linux swap (swap file, cgroup v1), all-local" \
	. (subtitle ne "" ? "\n" . subtitle : "") font "sans,13"

set logscale x 2
set logscale y 10
set xrange [10:110]
set xtics ("12.5" 12.5, "25" 25, "50" 50, "75" 75, "100" 100)
set xlabel "local memory (% of the working set)"
set format y "%.0s%c"
set grid xtics ytics mytics lw 0.5 lc rgb "#dddddd"
set key bottom right box opaque samplen 2 font "sans,10"

unit(w) = (strstrt(w, "redis") == 1 ? "requests/s" : "accesses/s")
describe(w) = w eq "zipf" ? "synthetic, zipf(0.99) over pages" : \
	w eq "uniform" ? "synthetic, uniform over pages" : \
	w eq "redis-zipf" ? "redis-server, zipf(0.99) keys, 95% GET" : \
	w eq "redis-uniform" ? "redis-server, uniform keys, 95% GET" : w

# The lines of a panel (a macro: a plot with an empty iteration warns).
lines = 'csv using 3:(strcol(1) eq w && strcol(2) eq "all-local" ? $8 : NaN)' \
	. ' with linespoints dt 2 lw 2 pt 1 lc rgb "black" title "all-local",' \
	. ' for [j = 1:words(systems)] csv' \
	. ' using 3:(strcol(1) eq w && strcol(2) eq word(systems, j) ? $8 : NaN)' \
	. ' with linespoints lw 2 pt (j + 4) ps 1.3 lc j title word(systems, j)'

do for [i = 1:nw] {
	w = word(workloads, i)
	# Runs killed by the OOM killer (Linux swap) have no throughput: they
	# are marked below the lowest point of the panel.
	set yrange [*:*]  # stats honours the axis range of the previous panel
	stats csv using (strcol(1) eq w ? $8 : NaN) nooutput
	floor = STATS_min / 2
	set title describe(w)
	set ylabel sprintf("throughput (%s)", unit(w))
	set yrange [floor / 1.5:*]
	if (killed_in(w) > 0) {
		plot @lines, csv using 3:(strcol(1) eq w && strcol(12) eq "killed" ? floor : NaN) \
			with points pt 2 ps 2 lw 2 lc rgb "red" title "killed (out of memory)"
	} else {
		plot @lines
	}
}
unset multiplot

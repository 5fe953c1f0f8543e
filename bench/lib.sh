# Helpers shared by the benchmark scripts (sourced, not run).

# peak_rss PID WATCHED INTERVAL: the highest RSS (KiB) of process PID, sampled every
# INTERVAL seconds while process WATCHED (a load generator) runs.
peak_rss() {
    local pid=$1 watched=$2 interval=$3 peak=0 r
    while kill -0 "$watched" 2>/dev/null; do
        r=$(ps -o rss= -p "$pid") && [ "$r" -gt "$peak" ] && peak=$r
        sleep "$interval"
    done
    echo "$peak"
}

#!/usr/bin/env bash
# bench/s3: Wisp's S3 listener against s3s-fs 0.14.1, the file backend that ships with the
# protocol crate (s3s) Wisp's listener is built on, both storing on the same disk ($work).
# Signed PUT and GET of 4 KiB and 1 MiB objects at c=1 and c=16, the two servers measured
# in alternation, ROUNDS times, medians reported; then the RSS growth of each server while
# one 1 GiB object is uploaded.
#
# Run with: bench/s3/run.sh            (DURATION=5s per measurement, ROUNDS=3;
#                                       e.g. DURATION=10s ROUNDS=5 bench/s3/run.sh)
# The scratch directory is `mktemp -d`: TMPDIR picks the disk under test.
# Needs: nothing beyond cargo (the load client is bench/s3's own binary).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
duration="${DURATION:-5s}"
rounds="${ROUNDS:-3}"
big=$((1 << 30))   # the RSS test's object: 1 GiB
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"   # $work (removed at exit), $pids (killed at exit)

# Both servers take the same credentials: Wisp's first start makes this its admin key
# (the S3 access key id and secret are the key's two halves).
access=WKTESTADMINKEY2345
secret=test-admin-secret-0123456789-abcdefghijk
bucket=bench

echo "building (release)…" >&2
cargo build --release --locked -q -p wisp -p wisp-bench-s3
target="${CARGO_TARGET_DIR:-$root/target}"
wisp="$target/release/wisp"
bench="$target/release/wisp-bench-s3"

# launch NAME COMMAND…: starts a server in the background and waits until it prints
# "Serving S3 on http://ADDR/" (sets $s3_addr), or prints "Serving HTTP" without an S3
# line before it, or exits (both leave $s3_addr empty). Sets $pid.
launch() {
    local name="$1"; shift
    local log="$work/$name.log"
    "$@" >"$work/$name.out" 2>"$log" &
    pid=$!
    pids+=("$pid")
    s3_addr=""
    for _ in $(seq 1 600); do
        # Wisp prints the S3 line before the HTTP one: read HTTP first, then S3.
        local http_up=no
        grep -q 'Serving HTTP on' "$log" && http_up=yes
        s3_addr="$(sed -n 's#.*Serving S3 on http://\([^/]*\)/.*#\1#p' "$log" | head -n1)"
        if [ -n "$s3_addr" ] || [ "$http_up" = yes ] || ! kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

echo "s3s-fs 0.14.1 on $work/s3sfs" >&2
launch s3sfs "$bench" serve-s3s-fs "$work/s3sfs" 127.0.0.1:0 "$access" "$secret"
[ -n "$s3_addr" ] || { echo "s3s-fs did not start:" >&2; cat "$work/s3sfs.log" >&2; exit 1; }
declare -A addr_of pid_of
addr_of[s3sfs]="$s3_addr"; pid_of[s3sfs]="$pid"

echo "wisp serve on $work/wisp" >&2
servers=(s3sfs)
WISP_BOOTSTRAP_KEY="$access.$secret" launch wisp "$wisp" serve --listen 127.0.0.1:0 \
    --s3-listen 127.0.0.1:0 --data-dir "$work/wisp"
if [ -n "$s3_addr" ]; then
    addr_of[wisp]="$s3_addr"; pid_of[wisp]="$pid"
    servers+=(wisp)
    # The admin key is the data dir's (a data dir made before would keep its own key).
    if [ -s "$work/wisp/admin.key" ]; then
        admin="$(cat "$work/wisp/admin.key")"
        access="${admin%%.*}"; secret="${admin#*.}"
        [ "$access" = WKTESTADMINKEY2345 ] || { echo "unexpected admin key in $work/wisp" >&2; exit 1; }
    fi
else
    echo "WISP SKIPPED: \`wisp serve\` printed no \"Serving S3 on http://ADDR/\" line (no S3 listener in this build?); its log:" >&2
    head -n 5 "$work/wisp.log" | sed 's/^/  | /' >&2
    stop "$pid"
fi

# status_kb PID FIELD: a field of /proc/PID/status, in kB.
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# rss_test NAME: uploads one $big-byte object to server NAME and sets growth_mb[NAME] to
# how far its resident memory rose above where it was before (MiB).
#
# Why the measure is valid: VmHWM is the peak RSS since the process started, not since
# the upload, so read alone it could show an older peak. Three things make it the
# upload's: (1) the test runs first, on a process that has served nothing but a bucket
# creation; (2) writing 5 to /proc/PID/clear_refs resets VmHWM to the current RSS
# (Linux >= 4.0; the script says when that is refused); (3) VmHWM is read right before
# too and printed: when it equals VmRSS there, the peak after can only come from the
# upload. Even when neither holds, VmHWM(after) - VmRSS(before) overstates the growth,
# never understates it. VmRSS is also sampled every 50 ms during the upload (a
# cross-check; the peak is the larger of the two).
declare -A growth_mb rss_note
rss_test() {
    local name="$1" pid="${pid_of[$1]}" addr="${addr_of[$1]}"
    "$bench" load "http://$addr" "$access" "$secret" "$bucket" 4k 1 0.2 put >/dev/null   # the bucket
    local reset=yes
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || reset=no
    local before hwm_before
    before="$(status_kb "$pid" VmRSS)"
    hwm_before="$(status_kb "$pid" VmHWM)"
    "$bench" put-big "http://$addr" "$access" "$secret" "$bucket" "$big" >"$work/big-$name.out" &
    local put=$! peak="$before" rss
    while kill -0 "$put" 2>/dev/null; do
        rss="$(status_kb "$pid" VmRSS)"
        if [ "$rss" -gt "$peak" ]; then peak="$rss"; fi
        sleep 0.05
    done
    wait "$put" || { echo "FAILED: the 1 GiB upload to $name" >&2; exit 1; }
    local hwm
    hwm="$(status_kb "$pid" VmHWM)"
    if [ "$hwm" -gt "$peak" ]; then peak="$hwm"; fi
    growth_mb[$name]="$(awk -v a="$peak" -v b="$before" 'BEGIN {printf "%.1f", (a - b) / 1024}')"
    rss_note[$name]="VmRSS before ${before} kB, VmHWM before ${hwm_before} kB (reset: $reset), peak ${peak} kB, $(cat "$work/big-$name.out")"
    echo "  $name: 1 GiB PUT, RSS growth ${growth_mb[$name]} MiB (${rss_note[$name]})" >&2
}

echo "RSS while uploading 1 GiB (fresh processes)" >&2
for name in "${servers[@]}"; do rss_test "$name"; done

# measure NAME OP SIZE C: prints "rps p50_us p99_us". A run with any failed request
# stops the benchmark: a fast wrong answer must not count as a fast answer.
measure() {
    local out
    if ! out="$("$bench" load "http://${addr_of[$1]}" "$access" "$secret" "$bucket" "$3" "$4" "$duration" "$2" 2>"$work/load.err")"; then
        echo "FAILED: $1 $2 $3 c=$4: ${out:-no result}" >&2
        sed 's/^/  | /' "$work/load.err" >&2
        exit 1
    fi
    local parsed
    parsed="$(sed -n 's/^rps=\([0-9]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) errors=0$/\1 \2 \3/p' <<<"$out")"
    [ -n "$parsed" ] || { echo "FAILED: $1 $2 $3 c=$4: unexpected output: $out" >&2; exit 1; }
    echo "$parsed"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

rows=()   # op:size:concurrency
for op in put get; do for size in 4k 1m; do for c in 1 16; do rows+=("$op:$size:$c"); done; done; done
declare -A rps p50 p99   # [name,row] → the rounds' samples, then their median
for row in "${rows[@]}"; do
    IFS=: read -r op size c <<<"$row"
    for round in $(seq 1 "$rounds"); do
        order=("${servers[@]}")
        # Alternate which server goes first, so neither always runs on a warmer disk.
        if [ $((round % 2)) = 0 ] && [ ${#servers[@]} = 2 ]; then order=("${servers[1]}" "${servers[0]}"); fi
        for name in "${order[@]}"; do
            result="$(measure "$name" "$op" "$size" "$c")"
            read -r r a b <<<"$result"
            rps[$name,$row]+="$r "; p50[$name,$row]+="$a "; p99[$name,$row]+="$b "
            printf '  %-6s %-3s %-2s c=%-2s round %s: %7s rps  p50 %7s us  p99 %7s us\n' "$name" "$op" "$size" "$c" "$round" "$r" "$a" "$b" >&2
        done
    done
    for name in "${servers[@]}"; do
        rps[$name,$row]="$(tr ' ' '\n' <<<"${rps[$name,$row]}" | grep . | median)"
        p50[$name,$row]="$(tr ' ' '\n' <<<"${p50[$name,$row]}" | grep . | median)"
        p99[$name,$row]="$(tr ' ' '\n' <<<"${p99[$name,$row]}" | grep . | median)"
    done
done

label() {
    local op size c
    IFS=: read -r op size c <<<"$1"
    case "$size" in 4k) size="4 KiB";; 1m) size="1 MiB";; esac
    printf '%s %s c=%s' "$op" "$size" "$c"
}
echo
echo "s3: signed path-style requests (SigV4, UNSIGNED-PAYLOAD) over keep-alive HTTP/1.1,"
echo "    ${duration} per measurement after a 0.5 s warm-up, median of $rounds rounds; disk: $(df -h --output=source "$work" | tail -n1)"
printf '%-18s %10s %8s %8s  %10s %8s %8s  %11s\n' "" "s3s-fs rps" "p50 us" "p99 us" "wisp rps" "p50 us" "p99 us" "wisp/s3s-fs"
below=()
for row in "${rows[@]}"; do
    if [ -n "${addr_of[wisp]:-}" ]; then
        r="$(ratio "${rps[wisp,$row]}" "${rps[s3sfs,$row]}")"
        if awk -v r="$r" 'BEGIN { exit !(r < 1) }'; then below+=("$(label "$row")"); fi
        printf '%-18s %10s %8s %8s  %10s %8s %8s  %11s\n' "$(label "$row")" "${rps[s3sfs,$row]}" "${p50[s3sfs,$row]}" "${p99[s3sfs,$row]}" \
            "${rps[wisp,$row]}" "${p50[wisp,$row]}" "${p99[wisp,$row]}" "$r"
    else
        printf '%-18s %10s %8s %8s  %10s %8s %8s  %11s\n' "$(label "$row")" "${rps[s3sfs,$row]}" "${p50[s3sfs,$row]}" "${p99[s3sfs,$row]}" \
            absent - - -
    fi
done
echo "RSS growth, one 1 GiB PUT:"
for name in "${servers[@]}"; do echo "  $name: ${growth_mb[$name]} MiB (${rss_note[$name]})"; done
if [ -n "${addr_of[wisp]:-}" ]; then
    if [ ${#below[@]} = 0 ]; then echo "wisp >= 1x s3s-fs on every row: yes"
    else echo "wisp >= 1x s3s-fs on every row: NO (below on: $(IFS=,; echo "${below[*]}"))"; fi
    if awk -v g="${growth_mb[wisp]}" 'BEGIN { exit !(g < 64) }'; then echo "wisp RSS growth < 64 MiB: yes"
    else echo "wisp RSS growth < 64 MiB: NO"; fi
    wisp_put="${rps[wisp,put:1m:16]}"; wisp_get="${rps[wisp,get:1m:16]}"; wisp_rss="${growth_mb[wisp]}"
else
    echo "wisp: absent (no S3 listener; see WISP SKIPPED above)"
    wisp_put=absent; wisp_get=absent; wisp_rss=absent
fi
echo "RESULT put_1m_rps=$wisp_put get_1m_rps=$wisp_get s3sfs_put_1m_rps=${rps[s3sfs,put:1m:16]} s3sfs_get_1m_rps=${rps[s3sfs,get:1m:16]} rss_growth_mb=$wisp_rss"

#!/usr/bin/env bash
# Side-by-side benchmark of this checkout against an older commit, in the same run on the same machine (issue 13:
# "benchmarks unchanged or better, side by side with the commit before the restructuring").
#
#   bench/compare.sh BASE rest   [rounds]   # default 5 rounds of 5 s per query and build
#   bench/compare.sh BASE stream [rounds]   # default 2 runs of `stream 1000 200 30` per build
#
# BASE is any commit (e.g. 3682b0f, the last one before the restructuring). It is checked out in a temporary worktree
# and both builds are compiled in Release.
#  - rest: both builds serve at once (`rest-serve`, each build with its own embedded PostgreSQL), and wrk
#    (16 connections, or BENCH_CONNECTIONS) alternates between them round by round: GET by primary key, a 50-row page and the one-to-many
#    embed. One build's req/s swings ±20 % between rounds on a 2-core machine, so each round also measures this
#    build's hand-written endpoint (Npgsql + role switch, no framework; in a third process) between the two, and each REST figure is
#    divided by it; medians over rounds are printed for both builds, and their ratio (this build / BASE). Beside it,
#    each build's own CPU time per request (/proc, user + system): the server's cost, which the machine's noise
#    sways less than req/s does (wrk and PostgreSQL share the two cores).
#  - stream: `stream 1000 200 30` runs alternately on each build; medians of p50/p99, lost events and stages printed.
#    Streams are opened 2 at a time (BENCH_OPEN) in both builds; BENCH_QUICK=1 skips the memory phases. Both harnesses
#    run BENCH_WARMUP (5) seconds of the same load before the measured 30 s (3682b0f's through its patch); the
#    warm-up's own p99 is printed beside them.
# Needs wrk (apt-get install wrk).
set -euo pipefail
base=${1:?usage: bench/compare.sh BASE rest|stream [rounds]}
what=${2:-rest}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/dbstudio-compare.XXXXXX)
serve_pids="" # this run's own servers only: a rest-serve started by hand elsewhere on the machine is left alone
trap 'for p in $serve_pids; do kill -9 "$p" 2>/dev/null || true; done; git -C "$here" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$here" worktree add --detach "$work/base" "$base" >/dev/null 2>&1
echo "base $(git -C "$work/base" log --oneline -1)"
# An older build's benchmark harness may need a fix to run at all: bench/patches/<base's short id>.patch is applied to
# its worktree (harness only, never the code measured), e.g. 3682b0f's stream harness, which opened 32 streams at
# once past its own login's connection limit (53300, a 500) and knew no BENCH_QUICK.
for patch in "$here"/bench/patches/"$(git -C "$work/base" rev-parse --short=7 HEAD)"*.patch; do
  [ -e "$patch" ] && git -C "$work/base" apply "$patch" && echo "base harness patched: bench/patches/$(basename "$patch")"
done
echo "this $(git -C "$here" log --oneline -1)$(git -C "$here" diff --quiet HEAD || echo ' (+ uncommitted changes)')"
for dir in "$work/base" "$here"; do
  dotnet build -c Release "$dir/bench/DbStudio.Bench" -v q -nologo 2>&1 | grep -E " error |rror\(s\)" || true
done
bin() { echo "$1/bench/DbStudio.Bench/bin/Release/net10.0/DbStudio.Bench"; }
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:] if x not in ("", "nan")]; print(f"{statistics.median(v):.1f}" if v else "nan")' "$@"; }

if [ "$what" = rest ]; then
  command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
  rounds=${3:-5}
  conns=${BENCH_CONNECTIONS:-16} # 16: the project's gate (4 at a time on 2 cores) keeps 12 waiting; 4: nobody waits
  cat > "$work/rnd.lua" <<'LUA'
request = function()
  local p = string.gsub(wrk.path, "{r}", tostring(math.random(1, 100000)))
  p = string.gsub(p, "{o}", tostring(math.random(0, 950)))
  return wrk.format("GET", p)
end
LUA
  declare -A rest key hand pid
  # "ref": a third process of this build, serving only the hand-written reference, so that neither measured process
  # does work the other does not (with the reference inside this build's process, that process alone served a
  # third of the load between its own REST rounds).
  for l in base this ref; do
    dir=$([ $l = base ] && echo "$work/base" || echo "$here")
    (cd "$dir" && exec "$(bin "$dir")" rest-serve > "$work/serve-$l.log" 2>&1) &
    pid[$l]=$!; serve_pids+=" $!"
  done
  for l in base this ref; do
    for _ in $(seq 1 300); do grep -q "^HAND" "$work/serve-$l.log" && break; sleep 1; done
    grep -q "^HAND" "$work/serve-$l.log" || { echo "the $l build did not start:"; tail -20 "$work/serve-$l.log"; exit 1; }
    rest[$l]=$(awk '/^REST/ {print $2}' "$work/serve-$l.log"); key[$l]=$(awk '/^REST/ {print $4}' "$work/serve-$l.log")
    hand[$l]=$(awk '/^HAND/ {print $2}' "$work/serve-$l.log")
  done
  w() { # url apikey seconds -> req/s
    local args=(-t2 -c"$conns" -d"$3"s -s "$work/rnd.lua"); [ -n "$2" ] && args+=(-H "apikey: $2")
    wrk "${args[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
  }
  # The server's own CPU time (user + system, from /proc) for each request of a run: less swayed than req/s by what
  # else the two cores were doing, since it leaves out wrk's and PostgreSQL's share. Sets $rps and $cpu (µs/request).
  wc() { # url apikey seconds pid
    local before after out n
    before=$(awk '{print $14 + $15}' "/proc/$4/stat")
    out=$(wrk -t2 -c"$conns" -d"$3"s -s "$work/rnd.lua" -H "apikey: $2" "$1")
    after=$(awk '{print $14 + $15}' "/proc/$4/stat")
    n=$(awk '/requests in/ {print $1}' <<<"$out"); rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    cpu=$(python3 -c "print(($after - $before) * 1e6 / $(getconf CLK_TCK) / max(1, $n))")
  }
  rest[base]=${rest[base]%/items} # older builds printed the table's address
  # The reference: this build's hand-written endpoint (older builds' baselines connected as the platform login,
  # refused since the schema lockdown), measured in every round between the two REST runs.
  printf '\n%-10s %-10s %12s %16s %16s\n' query build "REST req/s" "% of hand-written" "server µs/req"
  for q in pk page embed; do
    case $q in
      pk) rp='/items?id=eq.{r}'; hp='/rls/items/{r}' ;;
      page) rp='/items?limit=50&offset={o}'; hp='/rls/items?offset={o}' ;;
      embed) rp='/parents?select=id,name,children(id,name,qty)&order=id'; hp='/rls/parents' ;;
    esac
    ok=1
    for u in "${rest[base]}$rp|${key[base]}" "${rest[this]}$rp|${key[this]}" "${hand[ref]}$hp|"; do
      k=${u#*|}; u=${u%|*}; u=${u//\{r\}/1}; u=${u//\{o\}/0}
      [ "$(curl -s -o /dev/null -w '%{http_code}' -H "apikey: $k" "$u")" = 200 ] || { echo "$q: $u does not answer 200 (an older build without it?): skipped"; ok=0; }
    done
    [ $ok = 1 ] || continue
    # Warm-up: 15 s per build and query (BENCH_WARMUP), so that tiered JIT and dynamic PGO have settled in both.
    for l in base this; do w "${rest[$l]}$rp" "${key[$l]}" "${BENCH_WARMUP:-15}" >/dev/null; done; w "${hand[ref]}$hp" "" 4 >/dev/null
    declare -A rps=() ratio=() cpus=(); hrps=""
    for r in $(seq 1 "$rounds"); do
      # the order alternates, so neither build always runs right after the warm hand-written endpoint
      if [ $((r % 2)) = 1 ]; then
        wc "${rest[base]}$rp" "${key[base]}" 5 "${pid[base]}"; a=$rps; ca=$cpu
        h=$(w "${hand[ref]}$hp" "" 5)
        wc "${rest[this]}$rp" "${key[this]}" 5 "${pid[this]}"; b=$rps; cb=$cpu
      else
        wc "${rest[this]}$rp" "${key[this]}" 5 "${pid[this]}"; b=$rps; cb=$cpu
        h=$(w "${hand[ref]}$hp" "" 5)
        wc "${rest[base]}$rp" "${key[base]}" 5 "${pid[base]}"; a=$rps; ca=$cpu
      fi
      echo "  $q round $r: base $a, hand-written $h, this $b req/s; server CPU base $(printf %.0f "$ca"), this $(printf %.0f "$cb") µs/request" >&2
      rps[base]+="$a "; rps[this]+="$b "; hrps+="$h "; cpus[base]+="$ca "; cpus[this]+="$cb "
      ratio[base]+="$(python3 -c "print($a / $h * 100)") "; ratio[this]+="$(python3 -c "print($b / $h * 100)") "
    done
    for l in base this; do
      # shellcheck disable=SC2086
      printf '%-10s %-10s %12s %16s %16s\n' "$q" "$l" "$(median ${rps[$l]})" "$(median ${ratio[$l]})" "$(median ${cpus[$l]})"
    done
    # shellcheck disable=SC2086
    printf '%-10s %-10s %12s %16s\n' "$q" "hand" "$(median $hrps)" ""
    # shellcheck disable=SC2086
    printf '%-10s %-10s %12s %16s %16s\n' "$q" "this/base" "" "$(python3 -c "print(f'{$(median ${ratio[this]}) / $(median ${ratio[base]}) * 100:.0f} %')")" \
      "$(python3 -c "print(f'{$(median ${cpus[this]}) / $(median ${cpus[base]}) * 100:.0f} %')")"
    unset rps ratio cpus
  done
  echo "(medians of $rounds rounds; each round: 5 s of wrk -c$conns per build and variant, builds alternating; server µs/req: the build's own CPU time per request, lower is better)"
elif [ "$what" = stream ]; then
  rounds=${3:-2}
  declare -A p50 p99 lost warm hand
  for r in $(seq 1 "$rounds"); do
    for l in base this; do
      dir=$([ $l = base ] && echo "$work/base" || echo "$here")
      out="$work/stream-$l-$r.log"
      (cd "$dir" && BENCH_OPEN=${BENCH_OPEN:-2} "$(bin "$dir")" stream 1000 200 30 > "$out" 2>&1) || { echo "stream bench failed on $l:"; tail -20 "$out"; exit 1; }
      line=$(grep -A3 "DbStudio stream" "$out" | grep "commit→client")
      p50[$l]+="$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$line") "; p99[$l]+="$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$line") "
      lost[$l]+="$(grep -A2 "DbStudio stream" "$out" | grep "delivered / lost" | sed -E 's/.*\/ ([0-9,]+) \(.*/\1/' | tr -d ,) "
      warm[$l]+="$(grep -A4 "DbStudio stream" "$out" | grep -F "(warm-up, first" | sed -E 's/.*p99 ([0-9.]+) ms.*/\1/') "
      handp99=$(grep -A3 "hand-written SSE broadcast" "$out" | grep "commit→client" | sed -E 's/.*p99 ([0-9.]+) ms.*/\1/')
      hand[$l]+="$handp99 "
      echo "round $r $l: $line; lost $(tail -c 12 <<<"${lost[$l]}"); hand-written broadcast in the same run: p99 $handp99 ms"
    done
  done
  printf '\n%-6s %10s %10s %14s %16s %10s\n' build "p50 ms" "p99 ms" "warm-up p99" "hand-written p99" lost
  # shellcheck disable=SC2086
  for l in base this; do printf '%-6s %10s %10s %14s %16s %10s\n' "$l" "$(median ${p50[$l]})" "$(median ${p99[$l]})" "$(median ${warm[$l]})" "$(median ${hand[$l]})" "${lost[$l]}"; done
  echo "(medians of $rounds runs of stream 1000 200 30 per build, alternating; full outputs were in $work)"
else
  echo "usage: bench/compare.sh BASE rest|stream [rounds]" >&2; exit 2
fi

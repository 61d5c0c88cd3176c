#!/usr/bin/env bash
# bench.sh -- the pgshard benchmark suite (issue 8). One command: starts throw-away Postgres 15 clusters,
# PgBouncer (transaction pooling), a bare Node.js byte relay (bench/relay.mjs), a Node.js server that
# answers pgbench -S from memory (bench/canned.mjs: the client side alone, a floor), pgshard with one shard
# and pgshard with three shards (pgbench tables sharded by aid/tid/bid/aid, loaded through pgshard),
# then runs every workload against every target INTERLEAVED (A, B, C, A, B, C, ...).
#
# Usage: bash bench/bench.sh [--cpu-prof]      (npm run bench builds first, then runs this)
# Environment (defaults in brackets):
#   DURATION [3] seconds per run   REPS [2]   CLIENTS ["1 16 64"] for the -S workloads   THREADS [2]
#   MODES ["simple extended prepared"]  SCALE [10]   POOL_SIZE [20] (PgBouncer and pgshard, per shard)
#   TARGETS ["direct pgbouncer relay canned pgshard1 pgshard3"]  (canned runs the simple -S workloads only)
#   WORKLOADS ["select rate tpcb xshard idle storm"]  (select = -S x MODES x CLIENTS; rate = -S -M simple
#     -c 16 at RATE [10000] transactions/s, the same load for every target; xshard = count + top10)
#   TPCB_CLIENTS [8]  XSHARD_CLIENTS [4]  STORM_CLIENTS [8]  IDLE_CONNS [5000]  WARMUP [1] s per target
#   PROFILE [0] 1 (or --cpu-prof) = run pgshard under `node --cpu-prof`, profiles in <results>/prof
#   PG_BIN [/usr/lib/postgresql/15/bin]  PG_OS_USER [postgres]  INSTALL_PGBOUNCER [1]  KEEP [0]
#   RESULTS_ROOT [bench/results]
# Output: bench/results/<UTC timestamp>/{results.json,chart.svg,summary.md,meta.json,runs.tsv,idle.tsv}
# and the Markdown table on stdout.
set -euo pipefail

for a in "$@"; do
  case $a in
    --cpu-prof) PROFILE=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done

DURATION=${DURATION:-3}
REPS=${REPS:-2}
CLIENTS=${CLIENTS:-"1 16 64"}
THREADS=${THREADS:-2}
MODES=${MODES:-"simple extended prepared"}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-20}
TARGETS=${TARGETS:-"direct pgbouncer relay canned pgshard1 pgshard3"}
WORKLOADS=${WORKLOADS:-"select rate tpcb xshard idle storm"}
RATE=${RATE:-10000}
TPCB_CLIENTS=${TPCB_CLIENTS:-8}
XSHARD_CLIENTS=${XSHARD_CLIENTS:-4}
STORM_CLIENTS=${STORM_CLIENTS:-8}
IDLE_CONNS=${IDLE_CONNS:-5000}
WARMUP=${WARMUP:-1}
PROFILE=${PROFILE:-0}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_OS_USER=${PG_OS_USER:-postgres}
INSTALL_PGBOUNCER=${INSTALL_PGBOUNCER:-1}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
PGSHARD_CLI=${PGSHARD_CLI:-$ROOT/dist/cli.js}
RESULTS_ROOT=${RESULTS_ROOT:-$BENCH/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS_ROOT/$STAMP
BENCH_USER=bench BENCH_PASSWORD=bench BENCH_DB=bench
CLK_TCK=$(getconf CLK_TCK)
export CLK_TCK PGPASSWORD=$BENCH_PASSWORD PGCONNECT_TIMEOUT=10
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGSSLMODE 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }
is_root() { [[ $(id -u) -eq 0 ]]; }
as_pg() { if is_root; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"; }
read_pidfile() { [[ -r $1 ]] && head -1 "$1" | tr -cd '0-9' || true; }
probe() { "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$1" -U "$BENCH_USER" -d "$BENCH_DB" -c 'select 1' 2>&1; }
wait_answers() { # port seconds [pid that must stay alive]
  local port=$1 secs=$2 pid=${3:-} i out
  for ((i = 0; i < secs * 5; i++)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    out=$(probe "$port") && [[ $out == 1 ]] && return 0
    sleep 0.2
  done
  return 1
}

# /proc accounting: CPU ticks (utime+stime+cutime+cstime) and RSS (KiB) of a process tree
tree_stat() { # field(cpu|rss) root-pid...
  local what=$1; shift
  [[ $# -gt 0 ]] || { echo 0; return; }
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v roots=" $* " -v what="$what" -v pg="$(getconf PAGESIZE)" '
    { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      pp[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15]; r[pid] = f[22] * pg / 1024 }
    END {
      n = split(roots, rs, " "); for (i = 1; i <= n; i++) if (rs[i] in pp) in_tree[rs[i]] = 1
      changed = 1
      while (changed) { changed = 0
        for (p in pp) if (!(p in in_tree) && (pp[p] in in_tree)) { in_tree[p] = 1; changed = 1 } }
      for (p in in_tree) s += (what == "cpu" ? t[p] : r[p])
      printf "%.0f\n", s }'
}
settle() { # wait until the children of the given pids stop changing (backends exiting, reaped)
  local prev="" cur i
  for ((i = 0; i < 20; i++)); do
    cur=$({ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v roots=" $* " '
      { line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
        if (index(roots, " " f[2] " ")) printf "%s%s ", $1, (f[1] == "Z" ? "Z" : "") }')
    if [[ $cur == "$prev" && $cur != *Z* ]]; then return 0; fi
    prev=$cur; sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
WORK="" CLUSTERS=() PIDS_TO_STOP=() BOUNCER_PIDFILE="" IDLE_PID=""
stop_pid() { # pid name [seconds]
  local pid=$1 secs=${3:-5}
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? d p
  trap - EXIT INT TERM
  [[ -n $IDLE_PID ]] && kill -KILL "$IDLE_PID" 2>/dev/null || true
  for p in "${PIDS_TO_STOP[@]}"; do stop_pid "${p%%:*}" "${p#*:}" 15; done
  stop_pid "$(read_pidfile "$BOUNCER_PIDFILE")" pgbouncer
  [[ -n $WORK && -f $WORK/pgbouncer/pgbouncer.log && -d $OUT/logs ]] && tail -200 "$WORK/pgbouncer/pgbouncer.log" >"$OUT/logs/pgbouncer.log" 2>/dev/null || true
  for d in "${CLUSTERS[@]}"; do
    [[ -f $d/postmaster.pid ]] || continue
    log "stopping Postgres $d"
    as_pg "$PG_BIN/pg_ctl" -D "$d" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      { p=$(read_pidfile "$d/postmaster.pid"); [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true; }
  done
  if [[ -n $WORK && -d $WORK ]]; then if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
start_cluster() { # name shared_buffers -> sets CL_PORT CL_PID
  local name=$1 sb=$2 d=$WORK/$1
  CL_PORT=$(free_port)
  mkdir -m 700 "$d"; is_root && chown "$PG_OS_USER": "$d"
  as_pg "$PG_BIN/initdb" -D "$d" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$WORK/initdb-$name.log" 2>&1 ||
    { cat "$WORK/initdb-$name.log" >&2; die "initdb $name failed"; }
  as_pg tee -a "$d/postgresql.conf" >/dev/null <<EOC

# pgshard bench: loopback only, NOT durable
listen_addresses = '127.0.0.1'
port = $CL_PORT
unix_socket_directories = '$WORK/run'
max_connections = 300
max_prepared_transactions = 100
shared_buffers = $sb
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
logging_collector = off
EOC
  as_pg tee "$d/pg_hba.conf" >/dev/null <<EOC
local all all trust
host  all postgres 127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
EOC
  as_pg "$PG_BIN/pg_ctl" -D "$d" -l "$WORK/run/$name.log" -w -t 60 start >/dev/null ||
    { tail -20 "$WORK/run/$name.log" >&2; die "Postgres $name did not start"; }
  CLUSTERS+=("$d")
  CL_PID=$(read_pidfile "$d/postmaster.pid")
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK/run" -p "$CL_PORT" -U postgres -d postgres \
    -c "CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD'" -c "CREATE DATABASE $BENCH_DB OWNER $BENCH_USER" >/dev/null
  log "Postgres $name on 127.0.0.1:$CL_PORT (pid $CL_PID)"
}

find_pgbouncer() { command -v pgbouncer 2>/dev/null || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; } || true; }
start_pgbouncer() {
  if [[ -z $(find_pgbouncer) ]]; then
    [[ $INSTALL_PGBOUNCER == 1 ]] && is_root && command -v apt-get >/dev/null || { warn "pgbouncer missing and not installable"; return 1; }
    log "installing pgbouncer (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer; } >"$WORK/apt.log" 2>&1 ||
      { tail -20 "$WORK/apt.log" >&2; warn "apt-get install pgbouncer failed"; return 1; }
    service pgbouncer stop >/dev/null 2>&1 || true   # the package's own service is never used
  fi
  local bin dir=$WORK/pgbouncer; bin=$(find_pgbouncer)
  BOUNCER_PORT=$(free_port); mkdir -p "$dir"; BOUNCER_PIDFILE=$dir/pgbouncer.pid
  cat >"$dir/pgbouncer.ini" <<EOC
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG0_PORT dbname=$BENCH_DB
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
max_client_conn = $((IDLE_CONNS + 500))
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $BOUNCER_PIDFILE
log_connections = 0
log_disconnections = 0
EOC
  printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$dir/userlist.txt"; chmod 600 "$dir/userlist.txt"
  is_root && chown -R "$PG_OS_USER": "$dir"
  BOUNCER_VERSION=$("$bin" --version 2>/dev/null | awk 'NR==1{print $2}')
  # runuser/PAM drops the soft open-files limit to 1024: too few for IDLE_CONNS clients; raise it to the hard limit
  as_pg bash -c 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"' "$bin" -d "$dir/pgbouncer.ini" </dev/null >"$dir/stdout.log" 2>&1 || { warn "pgbouncer did not start"; return 1; }
  wait_answers "$BOUNCER_PORT" 10 || { tail -5 "$dir/pgbouncer.log" >&2; warn "pgbouncer does not answer"; return 1; }
  BOUNCER_PID=$(read_pidfile "$BOUNCER_PIDFILE")
  log "pgbouncer $BOUNCER_VERSION on 127.0.0.1:$BOUNCER_PORT (pid $BOUNCER_PID)"
}

start_relay() {
  RELAY_PORT=$(free_port)
  node "$BENCH/relay.mjs" "$RELAY_PORT" "$PG0_PORT" </dev/null >"$OUT/logs/relay.log" 2>&1 &
  RELAY_PID=$!; PIDS_TO_STOP+=("$RELAY_PID:relay")
  wait_answers "$RELAY_PORT" 10 "$RELAY_PID" || { warn "relay does not answer"; return 1; }
  log "relay on 127.0.0.1:$RELAY_PORT (pid $RELAY_PID)"
}

start_canned() {
  CANNED_PORT=$(free_port)
  node "$BENCH/canned.mjs" "$CANNED_PORT" </dev/null >"$OUT/logs/canned.log" 2>&1 &
  CANNED_PID=$!; PIDS_TO_STOP+=("$CANNED_PID:canned")
  wait_answers "$CANNED_PORT" 10 "$CANNED_PID" || { warn "canned does not answer"; return 1; }
  log "canned on 127.0.0.1:$CANNED_PORT (pid $CANNED_PID)"
}

start_pgshard() { # name shards-yaml tables-yaml -> sets SH_PORT SH_PID
  local name=$1 cfg=$WORK/$1.yaml node_args=()
  [[ -f $PGSHARD_CLI ]] || { warn "$PGSHARD_CLI missing (npm run build?)"; return 1; }
  SH_PORT=$(free_port)
  cat >"$cfg" <<EOC
listen: { host: 127.0.0.1, port: $SH_PORT }
users:
  - { name: $BENCH_USER, password: $BENCH_PASSWORD }
shards:
$2
ring: { vnodes: 256 }
tables:
$3
pool: { mode: transaction, size: $POOL_SIZE }
limits: { max_client_connections: $((IDLE_CONNS + 500)) }
transactions: { log_file: $WORK/$name-txlog.jsonl }
log: { level: warn }
EOC
  if [[ $PROFILE == 1 ]]; then mkdir -p "$OUT/prof/$name"; node_args=(--cpu-prof "--cpu-prof-dir=$OUT/prof/$name"); fi
  node "${node_args[@]}" "$PGSHARD_CLI" start --config "$cfg" --grace 2000 </dev/null >"$OUT/logs/$name.log" 2>&1 &
  SH_PID=$!; PIDS_TO_STOP+=("$SH_PID:$name")
  wait_answers "$SH_PORT" 30 "$SH_PID" || { tail -20 "$OUT/logs/$name.log" >&2; warn "$name does not answer"; return 1; }
  log "$name on 127.0.0.1:$SH_PORT (pid $SH_PID)${node_args:+, --cpu-prof}"
}

# ---------------------------------------------------------------------------------------------
declare -A T_PORT T_PID
ALL_PG_PIDS=""
wl_list() { # expands WORKLOADS into run-able workload names (idle is separate)
  local w m c
  for w in $WORKLOADS; do
    case $w in
      select) for m in $MODES; do for c in $CLIENTS; do echo "S-$m-c$c"; done; done ;;
      rate) echo rate-c16 ;;
      tpcb) echo tpcb ;;
      xshard) echo xshard-count; echo xshard-top10 ;;
      storm) echo storm ;;
      idle) ;;
      *) warn "unknown workload $w" ;;
    esac
  done
}
wl_args() { # workload -> pgbench arguments
  local w=$1 c m
  case $w in
    S-*) m=${w#S-}; m=${m%-c*}; c=${w##*-c}; echo "-S -M $m -c $c -j $((c < THREADS ? c : THREADS))" ;;
    rate-*) c=${w##*-c}; echo "-S -M simple -c $c -j $((c < THREADS ? c : THREADS)) -R $RATE" ;;
    tpcb) echo "-b tpcb-like -c $TPCB_CLIENTS -j $THREADS" ;;
    xshard-count) echo "-f $WORK/count.sql -c $XSHARD_CLIENTS -j $THREADS" ;;
    xshard-top10) echo "-f $WORK/top10.sql -c $XSHARD_CLIENTS -j $THREADS" ;;
    storm) echo "-C -S -c $STORM_CLIENTS -j $THREADS" ;;
  esac
}

measure() { # rep workload target
  local rep=$1 w=$2 t=$3 port=${T_PORT[$3]} pid=${T_PID[$3]:-} id=$1-$2-$3 rc=0
  local logf=$WORK/runs/$id.out prefix=$WORK/runs/txlog-$id
  if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
    printf '%s\t%s\t%s\tfailed\t\t\t\t\t\t\t\t%s\n' "$rep" "$w" "$t" "$t process (pid $pid) has exited" >>"$OUT/runs.tsv"
    warn "rep $rep $w: $t (pid $pid) has exited; see $OUT/logs/"
    return 0
  fi
  settle $ALL_PG_PIDS $pid
  local p0 g0 p1 g1 t0 t1
  p0=$(tree_stat cpu $pid); g0=$(tree_stat cpu $ALL_PG_PIDS); t0=$(date +%s.%N)
  # shellcheck disable=SC2046
  timeout -k 5 $((DURATION * 3 + 60)) "$PG_BIN/pgbench" -n $(wl_args "$w") -T "$DURATION" --log --log-prefix="$prefix" \
    -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$BENCH_DB" >"$logf" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  settle $ALL_PG_PIDS $pid
  p1=$(tree_stat cpu $pid); g1=$(tree_stat cpu $ALL_PG_PIDS)
  local tps txns aborted status note lat
  tps=$(awk '/^tps = /{print $3; exit}' "$logf")
  txns=$(awk -F': ' '/^number of transactions actually processed/{split($2, a, "/"); print a[1]; exit}' "$logf")
  aborted=$(grep -cE 'client [0-9]+ (script [0-9]+ )?aborted|number of failed transactions: [1-9]' "$logf" || true)
  note=$(grep -m1 -E 'error|ERROR|FATAL|abort' "$logf" | tr '\t\n' '  ' | cut -c1-160 || true)
  # mean and p99 latency (ms) from the per-transaction log (3rd field: latency in µs)
  lat=$({ cat "$prefix".* 2>/dev/null || true; } | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n | awk '{a[NR]=$1; s+=$1} END{ if (NR) { i=int(NR*0.99); if (i<1) i=1; printf "%.3f\t%.3f", s/NR/1000, a[i]/1000 } else printf "\t" }' || true)
  rm -f "$prefix".*
  if [[ -z $tps || ${txns:-0} == 0 ]]; then status=failed; elif [[ $rc -ne 0 || ${aborted:-0} -gt 0 ]]; then status=aborted; else status=ok; fi
  local pt=""; [[ -n $pid ]] && pt=$((p1 - p0))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$w" "$t" "$status" "${tps:-}" "$lat" "${txns:-}" "$pt" "$((g1 - g0))" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" "$note" >>"$OUT/runs.tsv"
  printf '  rep %s %-16s %-9s %-7s tps=%-9s lat(mean p99 ms)=%s\n' "$rep" "$w" "$t" "$status" "${tps%.*}" "$(echo "$lat" | tr '\t' ' ')" >&2
  if [[ $status != ok ]]; then printf '      -> %s\n' "${note:-exit code $rc}" >&2; fi
}

idle_test() { # target
  local t=$1 port=${T_PORT[$1]} pid=${T_PID[$1]} r0 r1 line f=$OUT/logs/idle-$1.out i
  if ! kill -0 "$pid" 2>/dev/null; then warn "idle: $t has exited"; printf '%s\t0\t%s\t\t\t\t%s\n' "$t" "$IDLE_CONNS" "process exited" >>"$OUT/idle.tsv"; return 0; fi
  settle "$pid"; sleep 0.5
  r0=$(tree_stat rss "$pid")
  node "$BENCH/idle.mjs" "$port" "$IDLE_CONNS" "$BENCH_USER" "$BENCH_PASSWORD" "$BENCH_DB" 50 </dev/null >"$f" 2>&1 &
  IDLE_PID=$!
  for ((i = 0; i < 1800; i++)); do grep -q '^OPEN' "$f" 2>/dev/null && break; kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.1; done
  sleep 1
  r1=$(tree_stat rss "$pid")
  line=$(grep -m1 '^OPEN' "$f" || echo "OPEN 0 $IDLE_CONNS - \"$(tail -c 150 "$f" | tr '\t\n' '  ')\"")
  kill -TERM "$IDLE_PID" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$IDLE_PID" 2>/dev/null || true; wait "$IDLE_PID" 2>/dev/null || true; IDLE_PID=""
  read -r _ ok failed ms note <<<"$line"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$ok" "$failed" "$r0" "$r1" "${ms%ms}" "${note//\"/}" >>"$OUT/idle.tsv"
  log "idle $t: $ok connected, $failed failed, RSS ${r0} -> ${r1} KiB ($(( ok > 0 ? (r1 - r0) / ok : 0 )) KiB/client)"
}

main() {
  mkdir -p "$OUT/logs"
  WORK=$(mktemp -d /tmp/pgshard-bench.XXXXXX); chmod 755 "$WORK"
  mkdir -p "$WORK/run" "$WORK/runs"; is_root && chown "$PG_OS_USER": "$WORK/run"
  : >"$OUT/runs.tsv"; : >"$OUT/idle.tsv"
  [[ -x $PG_BIN/postgres && -x $PG_BIN/pgbench ]] || die "no Postgres 15 in $PG_BIN"
  is_root && { id "$PG_OS_USER" >/dev/null 2>&1 || die "OS user $PG_OS_USER missing"; }
  echo 'select count(*) from pgbench_accounts;' >"$WORK/count.sql"
  echo 'select aid from pgbench_accounts order by abalance desc limit 10;' >"$WORK/top10.sql"

  start_cluster pg0 256MB; PG0_PORT=$CL_PORT; ALL_PG_PIDS=$CL_PID
  log "pgbench -i -s $SCALE (direct, pg0)"
  "$PG_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG0_PORT" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/init-pg0.log" 2>&1 ||
    { cat "$WORK/init-pg0.log" >&2; die "pgbench -i failed"; }
  "$PG_BIN/psql" -X -q -h "$WORK/run" -p "$PG0_PORT" -U postgres -d "$BENCH_DB" -c 'VACUUM ANALYZE' -c CHECKPOINT >/dev/null

  local ACTIVE="" t
  for t in $TARGETS; do
    case $t in
      direct) T_PORT[direct]=$PG0_PORT; ACTIVE+=" direct" ;;
      pgbouncer) start_pgbouncer && { T_PORT[pgbouncer]=$BOUNCER_PORT; T_PID[pgbouncer]=$BOUNCER_PID; ACTIVE+=" pgbouncer"; } || warn "skipping pgbouncer" ;;
      relay) start_relay && { T_PORT[relay]=$RELAY_PORT; T_PID[relay]=$RELAY_PID; ACTIVE+=" relay"; } || warn "skipping relay" ;;
      canned) start_canned && { T_PORT[canned]=$CANNED_PORT; T_PID[canned]=$CANNED_PID; ACTIVE+=" canned"; } || warn "skipping canned" ;;
      pgshard1)
        if start_pgshard pgshard1 "  - { id: s0, host: 127.0.0.1, port: $PG0_PORT, database: $BENCH_DB, user: $BENCH_USER, password: $BENCH_PASSWORD }" \
          "  pgbench_accounts: { shard_key: aid, key_type: bigint }"; then
          T_PORT[pgshard1]=$SH_PORT; T_PID[pgshard1]=$SH_PID; ACTIVE+=" pgshard1"; else warn "skipping pgshard1"; fi ;;
      pgshard3)
        local shards="" i
        for i in 1 2 3; do
          start_cluster "s$i" 128MB; ALL_PG_PIDS+=" $CL_PID"
          shards+="  - { id: s$i, host: 127.0.0.1, port: $CL_PORT, database: $BENCH_DB, user: $BENCH_USER, password: $BENCH_PASSWORD }"$'\n'
        done
        if start_pgshard pgshard3 "${shards%$'\n'}" "  pgbench_accounts: { shard_key: aid, key_type: bigint }
  pgbench_tellers: { shard_key: tid, key_type: bigint }
  pgbench_branches: { shard_key: bid, key_type: bigint }
  pgbench_history: { shard_key: aid, key_type: bigint }"; then
          log "pgbench -i -s $SCALE through pgshard3"
          if "$PG_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$SH_PORT" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/init-pgshard3.log" 2>&1; then
            for d in "${CLUSTERS[@]:1}"; do "$PG_BIN/psql" -X -q -h "$WORK/run" -p "$(awk -F'= ' '/^port = /{p=$2} END{print p}' "$d/postgresql.conf")" -U postgres -d "$BENCH_DB" -c 'VACUUM ANALYZE' >/dev/null; done
            T_PORT[pgshard3]=$SH_PORT; T_PID[pgshard3]=$SH_PID; ACTIVE+=" pgshard3"
          else tail -5 "$WORK/init-pgshard3.log" >&2; warn "pgbench -i through pgshard3 failed; skipping pgshard3"; fi
        else warn "skipping pgshard3"; fi ;;
      *) warn "unknown target $t" ;;
    esac
  done
  ACTIVE=${ACTIVE# }

  TOTAL_NODE=$(node -v)
  META_TARGETS=$ACTIVE PGV="$("$PG_BIN/postgres" --version | awk '{print $3}')" PGBV="${BOUNCER_VERSION:-}" COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)" \
    DURATION="$DURATION" REPS="$REPS" CLIENTS="$CLIENTS" THREADS="$THREADS" SCALE="$SCALE" POOL_SIZE="$POOL_SIZE" WORKLOADS="$WORKLOADS" \
    RATE="$RATE" TPCB_CLIENTS="$TPCB_CLIENTS" XSHARD_CLIENTS="$XSHARD_CLIENTS" STORM_CLIENTS="$STORM_CLIENTS" IDLE_CONNS="$IDLE_CONNS" PROFILE="$PROFILE" \
    node -e '
    const os = require("os"), e = process.env;
    console.log(JSON.stringify({ date: new Date().toISOString(), host: os.hostname(), cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model,
      loadavg: os.loadavg(), mem_gib: +(os.totalmem() / 2 ** 30).toFixed(1), kernel: os.release(), node: process.version,
      postgres: e.PGV, pgbouncer: e.PGBV || null, pgshard_commit: e.COMMIT || null, duration_s: +e.DURATION, reps: +e.REPS,
      clients: e.CLIENTS, threads: +e.THREADS, scale: +e.SCALE, pool_size: +e.POOL_SIZE, targets: e.META_TARGETS.split(" "),
      workloads: e.WORKLOADS, rate: +e.RATE, tpcb_clients: +e.TPCB_CLIENTS, xshard_clients: +e.XSHARD_CLIENTS, storm_clients: +e.STORM_CLIENTS,
      idle_conns: +e.IDLE_CONNS, profile: e.PROFILE === "1" }, null, 2))' >"$OUT/meta.json"

  if [[ $WARMUP -gt 0 ]]; then
    for t in $ACTIVE; do
      "$PG_BIN/pgbench" -n -S -c 4 -j 2 -T "$WARMUP" -h 127.0.0.1 -p "${T_PORT[$t]}" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/runs/warmup-$t.log" 2>&1 || warn "warm-up via $t failed"
    done
  fi

  local wls rep w
  wls=$(wl_list)
  log "targets: $ACTIVE | workloads: $(echo $wls) | -T $DURATION x $REPS reps, interleaved"
  for rep in $(seq 1 "$REPS"); do
    for w in $wls; do
      for t in $ACTIVE; do
        # canned answers the simple-protocol -S statements only
        [[ $t == canned && $w != S-simple-* && $w != rate-* ]] && continue
        measure "$rep" "$w" "$t"
      done
    done
  done
  if [[ " $WORKLOADS " == *" idle "* ]]; then
    for t in $ACTIVE; do case $t in pgbouncer|pgshard1|pgshard3) idle_test "$t" ;; esac; done
  fi

  echo
  echo "pgshard bench $STAMP: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); Postgres $("$PG_BIN/postgres" --version | awk '{print $3}'), PgBouncer ${BOUNCER_VERSION:-n/a}, node $TOTAL_NODE; -T $DURATION, $REPS rep(s), scale $SCALE, pool $POOL_SIZE"
  echo
  node "$BENCH/report.mjs" "$OUT"
  echo
  log "wrote $OUT/{results.json,chart.svg,summary.md}"
}

main "$@"

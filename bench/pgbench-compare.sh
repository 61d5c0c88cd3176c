#!/usr/bin/env bash
# pgbench-compare.sh -- pgbench select-only through three doors to the same Postgres 15:
#   direct     pgbench -> Postgres
#   pgbouncer  pgbench -> PgBouncer (transaction pooling) -> Postgres
#   pgshard    pgbench -> pgshard (one shard)              -> Postgres
# Runs are interleaved (direct, pgbouncer, pgshard, direct, ...) so that machine noise shows up as
# spread between repetitions rather than as a bias against one target. For the proxies it also reads
# the process tree's CPU time from /proc and reports CPU microseconds per transaction.
#
# Usage: bash bench/pgbench-compare.sh            (npm run bench builds first, then runs this)
# Environment (defaults in brackets):
#   DURATION [10] seconds per run   REPS [2]   CLIENTS [16]   THREADS [2]   SCALE [10]
#   MODES ["simple extended prepared"]        TARGETS ["direct pgbouncer pgshard"]
#   WARMUP [2] seconds per target, discarded  POOL_SIZE [20] PgBouncer and pgshard pool size
#   PG_BIN [/usr/lib/postgresql/15/bin]       PG_OS_USER [postgres] (runs Postgres when we are root)
#   PGSHARD_CLI [dist/cli.js]                 PGBOUNCER_BIN [pgbouncer on PATH or /usr/sbin/pgbouncer]
#   INSTALL_PGBOUNCER [1] apt-get install pgbouncer when missing (root only)
#   RESULTS_DIR [bench/results]  KEEP [0] 1 = leave the work directory (logs, configs) behind
# Output: a Markdown table on stdout, bench/results/<timestamp>.json; logs in the work dir (KEEP=1).
set -euo pipefail

DURATION=${DURATION:-10}
REPS=${REPS:-2}
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
MODES=${MODES:-"simple extended prepared"}
TARGETS=${TARGETS:-"direct pgbouncer pgshard"}
WARMUP=${WARMUP:-2}
POOL_SIZE=${POOL_SIZE:-20}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_OS_USER=${PG_OS_USER:-postgres}
INSTALL_PGBOUNCER=${INSTALL_PGBOUNCER:-1}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGSHARD_CLI=${PGSHARD_CLI:-$ROOT/dist/cli.js}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
BENCH_USER=bench BENCH_PASSWORD=bench BENCH_DB=bench
CLK_TCK=$(getconf CLK_TCK)

export PGPASSWORD=$BENCH_PASSWORD PGCONNECT_TIMEOUT=10
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGSSLMODE 2>/dev/null || true

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }
# Postgres and PgBouncer refuse to run as root
as_pg() { if is_root; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})"
}

probe() { # port -> prints 1 when a real query answers
  "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$1" -U "$BENCH_USER" -d "$BENCH_DB" -c 'select 1' 2>&1
}

wait_answers() { # port seconds [pid that must stay alive]
  local port=$1 secs=$2 pid=${3:-} i out=""
  for ((i = 0; i < secs * 5; i++)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    out=$(probe "$port") && [[ $out == 1 ]] && return 0
    sleep 0.2
  done
  return 1
}

read_pidfile() { [[ -r $1 ]] && head -1 "$1" | tr -cd '0-9' || true; }

# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc: clock ticks (utime+stime, plus reaped children's cutime+cstime) of a
# process and all its descendants.
cpu_tree_ticks() { # root-pid
  local root=${1:-}
  if [[ -z $root || ! -d /proc/$root ]]; then echo 0; return; fi
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$root" '
    { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
      pp[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15] }
    END {
      in_tree[root] = 1; changed = 1
      while (changed) { changed = 0
        for (p in pp) if (!(p in in_tree) && (pp[p] in in_tree)) { in_tree[p] = 1; changed = 1 } }
      for (p in in_tree) s += t[p]
      printf "%.0f\n", s }'
}

# Waits until the children of the given pids stop changing (pgbench's backends exiting and being
# reaped), so that the CPU they used is counted in this run, once.
settle() {
  local prev="" cur i
  for ((i = 0; i < 30; i++)); do
    cur=$({ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v roots=" $* " '
      { pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
        if (index(roots, " " f[2] " ")) printf "%s%s ", pid, (f[1] == "Z" ? "Z" : "") }')
    if [[ $cur == "$prev" && $cur != *Z* ]]; then return 0; fi
    prev=$cur
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------------------------
# Clean-up: everything we started, whatever happens
WORK="" PG_DATA="" PGSHARD_PID="" BOUNCER_PIDFILE=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $PGSHARD_PID ]] && kill -0 "$PGSHARD_PID" 2>/dev/null; then
    log "stopping pgshard (pid $PGSHARD_PID)"
    kill -TERM "$PGSHARD_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PGSHARD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PGSHARD_PID" 2>/dev/null || true
  fi
  local bp; bp=$(read_pidfile "$BOUNCER_PIDFILE")
  if [[ -n $bp ]] && kill -0 "$bp" 2>/dev/null; then
    log "stopping pgbouncer (pid $bp)"
    kill -TERM "$bp" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$bp" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bp" 2>/dev/null || true
  fi
  if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
    log "stopping Postgres (pg_ctl stop -m fast)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      { local pp; pp=$(read_pidfile "$PG_DATA/postmaster.pid"); [[ -n $pp ]] && kill -KILL "$pp" 2>/dev/null || true; }
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ $KEEP == 1 ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Postgres 15
start_postgres() {
  [[ -x $PG_BIN/postgres && -x $PG_BIN/pgbench && -x $PG_BIN/psql ]] || die "no postgres/pgbench/psql in PG_BIN=$PG_BIN"
  if is_root; then id "$PG_OS_USER" >/dev/null 2>&1 || die "running as root and the OS user $PG_OS_USER does not exist"; fi
  PG_DATA=$WORK/pg
  PG_PORT=$(free_port)
  mkdir -m 700 "$PG_DATA"
  if is_root; then chown "$PG_OS_USER": "$PG_DATA"; fi
  log "initdb $("$PG_BIN/postgres" --version | awk '{print $3}') in $PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
  as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null <<EOF

# pgshard bench: loopback only, NOT durable (fsync off)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/run'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
logging_collector = off
EOF
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
local all all trust
host  all postgres 127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
EOF
  log "starting Postgres on 127.0.0.1:$PG_PORT"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/run/postgres.log" -w -t 60 start >/dev/null ||
    { tail -20 "$WORK/run/postgres.log" >&2; die "Postgres did not start"; }
  PG_PID=$(read_pidfile "$PG_DATA/postmaster.pid")
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK/run" -p "$PG_PORT" -U postgres -d postgres \
    -c "CREATE ROLE $BENCH_USER LOGIN PASSWORD '$BENCH_PASSWORD'" -c "CREATE DATABASE $BENCH_DB OWNER $BENCH_USER" >/dev/null
  log "pgbench -i -s $SCALE"
  "$PG_BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" "$BENCH_DB" >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
  "$PG_BIN/psql" -X -q -h "$WORK/run" -p "$PG_PORT" -U postgres -d "$BENCH_DB" -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
}

# ---------------------------------------------------------------------------------------------
# PgBouncer: the distribution's package, our own process and config (its service is not used)
find_pgbouncer() {
  if [[ -n ${PGBOUNCER_BIN:-} ]]; then echo "$PGBOUNCER_BIN"; return; fi
  command -v pgbouncer 2>/dev/null || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; } || true
}

install_pgbouncer() {
  [[ -n $(find_pgbouncer) ]] && return 0
  if [[ $INSTALL_PGBOUNCER != 1 ]]; then warn "pgbouncer is not installed (INSTALL_PGBOUNCER=0)"; return 1; fi
  if ! is_root || ! command -v apt-get >/dev/null; then warn "pgbouncer is not installed and cannot be installed here (needs root and apt-get)"; return 1; fi
  log "installing pgbouncer (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer; } \
    >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; warn "apt-get install pgbouncer failed"; return 1; }
  # the package's own service must not keep running next to ours
  if command -v systemctl >/dev/null && systemctl is-active --quiet pgbouncer 2>/dev/null; then systemctl stop pgbouncer || true; fi
  service pgbouncer stop >/dev/null 2>&1 || true
  [[ -n $(find_pgbouncer) ]]
}

start_pgbouncer() {
  install_pgbouncer || return 1
  local bin; bin=$(find_pgbouncer)
  BOUNCER_PORT=$(free_port)
  local dir=$WORK/pgbouncer
  mkdir -p "$dir"
  BOUNCER_PIDFILE=$dir/pgbouncer.pid
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG_PORT dbname=$BENCH_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 400
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $BOUNCER_PIDFILE
log_connections = 0
log_disconnections = 0
EOF
  printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$dir/userlist.txt"
  chmod 600 "$dir/userlist.txt"
  if is_root; then chown -R "$PG_OS_USER": "$dir"; fi
  BOUNCER_VERSION=$("$bin" --version 2>/dev/null | awk 'NR==1{print $2}')
  log "starting pgbouncer $BOUNCER_VERSION (transaction pooling, pool size $POOL_SIZE) on 127.0.0.1:$BOUNCER_PORT"
  as_pg "$bin" -d "$dir/pgbouncer.ini" </dev/null >"$dir/stdout.log" 2>&1 ||
    { cat "$dir/stdout.log" "$dir/pgbouncer.log" >&2 2>/dev/null; warn "pgbouncer did not start"; return 1; }
  if ! wait_answers "$BOUNCER_PORT" 10; then
    tail -20 "$dir/pgbouncer.log" >&2 || true
    warn "pgbouncer does not answer queries"
    return 1
  fi
  BOUNCER_PID=$(read_pidfile "$BOUNCER_PIDFILE")
}

# ---------------------------------------------------------------------------------------------
# pgshard, one shard
start_pgshard() {
  if [[ ! -f $PGSHARD_CLI ]]; then warn "$PGSHARD_CLI does not exist (npm run build?)"; return 1; fi
  PGSHARD_PORT=$(free_port)
  local cfg=$WORK/pgshard.yaml
  cat >"$cfg" <<EOF
listen: { host: 127.0.0.1, port: $PGSHARD_PORT }
users:
  - { name: $BENCH_USER, password: $BENCH_PASSWORD }
shards:
  - { id: s0, host: 127.0.0.1, port: $PG_PORT, database: $BENCH_DB, user: $BENCH_USER, password: $BENCH_PASSWORD }
ring: { vnodes: 256 }
tables: {}
pool: { mode: transaction, size: $POOL_SIZE }
log: { level: warn }
EOF
  log "starting pgshard (node $PGSHARD_CLI start) on 127.0.0.1:$PGSHARD_PORT"
  node "$PGSHARD_CLI" start --config "$cfg" </dev/null >"$WORK/pgshard.log" 2>&1 &
  PGSHARD_PID=$!
  if ! wait_answers "$PGSHARD_PORT" 30 "$PGSHARD_PID"; then
    tail -20 "$WORK/pgshard.log" >&2 || true
    warn "pgshard did not answer 'select 1' on $PGSHARD_PORT"
    kill -KILL "$PGSHARD_PID" 2>/dev/null || true
    PGSHARD_PID=""
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------
# measurement
target_port() { case $1 in direct) echo "$PG_PORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; pgshard) echo "$PGSHARD_PORT" ;; esac; }
target_pid() { case $1 in direct) echo "" ;; pgbouncer) echo "$BOUNCER_PID" ;; pgshard) echo "$PGSHARD_PID" ;; esac; }

RUNS_TSV=""
measure() { # rep mode target
  local rep=$1 mode=$2 tgt=$3 port pid logf rc=0
  port=$(target_port "$tgt"); pid=$(target_pid "$tgt")
  logf=$WORK/runs/$rep-$mode-$tgt.log
  settle "$PG_PID" $pid
  local p0 g0 p1 g1 t0 t1
  p0=$(cpu_tree_ticks "$pid"); g0=$(cpu_tree_ticks "$PG_PID"); t0=$(date +%s.%N)
  timeout -k 10 $((DURATION * 2 + 60)) "$PG_BIN/pgbench" -n -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
    -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$BENCH_DB" >"$logf" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  settle "$PG_PID" $pid
  p1=$(cpu_tree_ticks "$pid"); g1=$(cpu_tree_ticks "$PG_PID")
  local tps lat txns aborted status note
  tps=$(awk '/^tps = /{print $3; exit}' "$logf")
  lat=$(awk '/^latency average = /{print $4; exit}' "$logf")
  txns=$(awk -F': ' '/^number of transactions actually processed/{split($2, a, "/"); print a[1]; exit}' "$logf")
  aborted=$(grep -cE 'client [0-9]+ (script [0-9]+ )?aborted' "$logf" || true)
  note=$(grep -m1 -E 'error|ERROR|FATAL|abort' "$logf" | tr '\t\n' '  ' | cut -c1-200 || true)
  if [[ -z $tps ]]; then status=failed; elif [[ $rc -ne 0 || ${aborted:-0} -gt 0 ]]; then status=aborted; else status=ok; fi
  local proxy_ticks=""; [[ -n $pid ]] && proxy_ticks=$((p1 - p0))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$mode" "$tgt" "$status" "${tps:-}" "${lat:-}" "${txns:-}" \
    "$proxy_ticks" "$((g1 - g0))" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')" "$note" >>"$RUNS_TSV"
  printf '  rep %s %-9s %-10s %-8s tps=%-10s lat=%s ms\n' "$rep" "$mode" "$tgt" "$status" "${tps:--}" "${lat:--}" >&2
  [[ $status == ok ]] || printf '      -> %s\n' "${note:-exit code $rc}" >&2
}

summary_md() { # runs.tsv -> Markdown
  awk -F'\t' -v hz="$CLK_TCK" '
    { k = $2 SUBSEP $3
      if (!(k in seen)) { seen[k] = 1; order[++n] = k; md[k] = $2; tg[k] = $3 }
      runs[k]++
      if ($4 == "ok") { ok[k]++; tps[k] += $5; lat[k] += $6; tx[k] += $7
        if ($8 != "") { pt[k] += $8; ptx[k] += $7 }
        gt[k] += $9 }
      else { bad[k]++; why[k] = why[k] sprintf("\n- %s via %s, rep %s: %s (%s)", $2, $3, $1, $4, ($11 == "" ? "no output" : $11)) } }
    END {
      for (i = 1; i <= n; i++) { k = order[i]; if (ok[k]) mt[k] = tps[k] / ok[k] }
      print "| mode | target | TPS | mean latency ms | vs direct | vs pgbouncer | proxy CPU µs/txn | Postgres CPU µs/txn | runs ok |"
      print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
      for (i = 1; i <= n; i++) { k = order[i]; m = md[k]
        d = (m SUBSEP "direct") in mt ? mt[m SUBSEP "direct"] : 0
        b = (m SUBSEP "pgbouncer") in mt ? mt[m SUBSEP "pgbouncer"] : 0
        if (ok[k]) {
          printf "| %s | %s | %.0f | %.3f | %s | %s | %s | %s | %d/%d |\n", m, tg[k], mt[k], lat[k] / ok[k],
            (d > 0 ? sprintf("%.3f", mt[k] / d) : "-"), (b > 0 ? sprintf("%.3f", mt[k] / b) : "-"),
            (ptx[k] > 0 ? sprintf("%.1f", pt[k] / hz * 1e6 / ptx[k]) : "-"),
            (tx[k] > 0 ? sprintf("%.1f", gt[k] / hz * 1e6 / tx[k]) : "-"), ok[k], runs[k]
        } else printf "| %s | %s | failed | - | - | - | - | - | 0/%d |\n", m, tg[k], runs[k]
      }
      print "\nMeans over clean runs only; ratios compare mean TPS with the same mode. CPU µs/txn: user+system"
      print "CPU time of the process tree (the proxy; the postmaster and its backends) over the run, per transaction."
      for (i = 1; i <= n; i++) if (why[order[i]] != "") { if (!hdr++) printf "\nRuns that did not complete cleanly:"; printf "%s", why[order[i]] }
      if (hdr) print "" }' "$1"
}

write_json() { # runs.tsv summary.md out.json
  TSV=$1 SUMMARY=$2 OUT=$3 CLK_TCK=$CLK_TCK \
  META_DURATION=$DURATION META_REPS=$REPS META_CLIENTS=$CLIENTS META_THREADS=$THREADS META_SCALE=$SCALE \
  META_POOL_SIZE=$POOL_SIZE META_WARMUP=$WARMUP META_TARGETS="$ACTIVE_TARGETS" META_MODES="$MODES" \
  META_PG_VERSION="$("$PG_BIN/postgres" --version | awk '{print $3}')" META_PGBOUNCER_VERSION="${BOUNCER_VERSION:-}" \
  META_PGSHARD_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)" \
  node -e '
    const fs = require("fs"), os = require("os"), e = process.env;
    const num = (s) => (s === "" || s === undefined ? null : Number(s));
    const runs = fs.readFileSync(e.TSV, "utf8").split("\n").filter(Boolean).map((l) => {
      const [rep, mode, target, status, tps, lat, txns, proxyTicks, pgTicks, wall, note] = l.split("\t");
      const tx = num(txns), hz = Number(e.CLK_TCK);
      const perTxn = (ticks) => (ticks === null || !tx ? null : Math.round((ticks / hz) * 1e6 / tx * 10) / 10);
      return { rep: Number(rep), mode, target, status, tps: num(tps), latency_ms: num(lat), transactions: tx,
        proxy_cpu_us_per_txn: perTxn(num(proxyTicks)), postgres_cpu_us_per_txn: perTxn(num(pgTicks)),
        proxy_cpu_ticks: num(proxyTicks), postgres_cpu_ticks: num(pgTicks), wall_s: num(wall), note: note || null };
    });
    const meta = { date: new Date().toISOString(), host: os.hostname(), cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model,
      kernel: os.release(), node: process.version, postgres: e.META_PG_VERSION, pgbouncer: e.META_PGBOUNCER_VERSION || null,
      pgshard_commit: e.META_PGSHARD_COMMIT || null, workload: "pgbench -S (select-only), -n", duration_s: Number(e.META_DURATION),
      reps: Number(e.META_REPS), clients: Number(e.META_CLIENTS), threads: Number(e.META_THREADS), scale: Number(e.META_SCALE),
      pool_size: Number(e.META_POOL_SIZE), warmup_s: Number(e.META_WARMUP), targets: e.META_TARGETS.split(" ").filter(Boolean),
      modes: e.META_MODES.split(" ").filter(Boolean), clk_tck: Number(e.CLK_TCK) };
    fs.writeFileSync(e.OUT, JSON.stringify({ meta, runs, summary_markdown: fs.readFileSync(e.SUMMARY, "utf8") }, null, 2) + "\n");
  '
}

# ---------------------------------------------------------------------------------------------
main() {
  WORK=$(mktemp -d /tmp/pgshard-bench.XXXXXX)
  chmod 755 "$WORK"
  mkdir -p "$WORK/run" "$WORK/runs"
  if is_root; then chown "$PG_OS_USER": "$WORK/run"; fi
  RUNS_TSV=$WORK/runs.tsv
  : >"$RUNS_TSV"

  start_postgres
  ACTIVE_TARGETS=""
  local t
  for t in $TARGETS; do
    case $t in
      direct) ACTIVE_TARGETS+=" direct" ;;
      pgbouncer) if start_pgbouncer; then ACTIVE_TARGETS+=" pgbouncer"; else warn "skipping pgbouncer"; fi ;;
      pgshard) if start_pgshard; then ACTIVE_TARGETS+=" pgshard"; else warn "skipping pgshard"; fi ;;
      *) warn "unknown target $t" ;;
    esac
  done
  ACTIVE_TARGETS=${ACTIVE_TARGETS# }

  if [[ $WARMUP -gt 0 ]]; then
    for t in $ACTIVE_TARGETS; do
      log "warm-up ${WARMUP}s via $t (discarded)"
      "$PG_BIN/pgbench" -n -S -c "$CLIENTS" -j "$THREADS" -T "$WARMUP" -h 127.0.0.1 -p "$(target_port "$t")" \
        -U "$BENCH_USER" "$BENCH_DB" >"$WORK/runs/warmup-$t.log" 2>&1 || warn "warm-up via $t failed"
    done
  fi

  log "targets: $ACTIVE_TARGETS | modes: $MODES | -c $CLIENTS -j $THREADS -T $DURATION x $REPS reps"
  local rep mode
  for rep in $(seq 1 "$REPS"); do
    for mode in $MODES; do
      for t in $ACTIVE_TARGETS; do measure "$rep" "$mode" "$t"; done
    done
  done

  local stamp out
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$RESULTS_DIR"
  out=$RESULTS_DIR/$stamp.json
  summary_md "$RUNS_TSV" >"$WORK/summary.md"
  write_json "$RUNS_TSV" "$WORK/summary.md" "$out"
  echo
  echo "pgbench -S -c $CLIENTS -j $THREADS -T $DURATION, scale $SCALE, $REPS rep(s) interleaved; Postgres $("$PG_BIN/postgres" --version | awk '{print $3}')${BOUNCER_VERSION:+, PgBouncer $BOUNCER_VERSION}; pool size $POOL_SIZE"
  echo
  cat "$WORK/summary.md"
  echo
  log "wrote $out"
}

main "$@"

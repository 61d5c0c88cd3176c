#!/usr/bin/env bash
# bench/floors/run.sh PORT PID [mode] [clients] [secs]: pgbench -S through PORT; TPS and CPU µs/txn of process PID (user bench/bench, database bench).
port=$1 pid=$2 mode=${3:-simple} c=${4:-16} T=${5:-8}
tick=$(getconf CLK_TCK)
cpu(){ awk '{print $14+$15+$16+$17}' /proc/$1/stat; }
a=$(cpu $pid)
out=$(PGPASSWORD=bench pgbench -h 127.0.0.1 -p $port -U bench -S -M $mode -c $c -j 2 -T $T -n bench 2>&1)
b=$(cpu $pid)
tps=$(echo "$out" | grep -oP 'tps = \K[0-9.]+' | head -1)
n=$(echo "$out" | grep -oP 'number of transactions actually processed: \K[0-9]+')
echo "port=$port mode=$mode c=$c tps=$tps cpu_us_per_txn=$(python3 -c "print(round(($b-$a)/$tick*1e6/$n,1))")"

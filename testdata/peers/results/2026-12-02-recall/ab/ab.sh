#!/usr/bin/env bash
# ab.sh A B ROUNDS OUT: interleaved rounds of the harness bench in two work dirs, both orders.
A=$1 B=$2 R=$3 OUT=$4
: > $OUT
for i in $(seq 1 $R); do
  if [ $((i%2)) = 1 ]; then order="$A $B"; else order="$B $A"; fi
  for d in $order; do
    echo "== $d round $i $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
    (cd $d && PEERS='floor|depai-inproc' results/peers.test -test.run '^$' -test.bench 'Turn/(floor|depai-inproc)' -test.benchmem -test.count ${COUNT:-1} -test.benchtime 1s 2>&1 | grep Benchmark >> $OUT)
  done
done

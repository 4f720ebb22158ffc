#!/usr/bin/env bash
# Runs the side-by-side harness (../shared/peers, see its README) against this
# checkout, with this folder's depai adapter (depaipeer/, cmd/depai-*): every
# peer in one run, so ratios to the floor compare. It is the harness's run.sh
# and bench.sh in one, plus the live heap after 100 turns, so the heap's growth
# from 100 to TURNS turns shows (issue 14, target 2).
#
#   testdata/peers/run.sh                         # from the checkout's root
#   HARNESS=/work/shared/peers OUT=DIR COUNT=5 BENCHTIME=1s RUNS=21 TURNS=10000 testdata/peers/run.sh
#   PEERS='floor|eino-react|depai-' testdata/peers/run.sh   # only these (a regexp on peer names)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
harness=${HARNESS:-$project/../shared/peers}
[ -f "$harness/bench.sh" ] || harness=/work/shared/peers
COUNT=${COUNT:-5} BENCHTIME=${BENCHTIME:-1s} RUNS=${RUNS:-21} TURNS=${TURNS:-10000} PEERS=${PEERS:-.}
work=$(mktemp -d)
cp -r "$harness"/. "$work"/
chmod -R u+w "$work"
cd "$work"
rm -rf results bin depaipeer cmd/depai-*
cp -r "$here/depaipeer" depaipeer
cp -r "$here/cmd/." cmd/
go mod edit -replace=github.com/depai/depai="$project"
go mod tidy >/dev/null
# depai's own requirements can lift a shared module past what a peer builds
# with (go.opentelemetry.io/otel/log v1.47 for adk v2.2.0): such a peer is
# left out of this run, and env.txt says so.
dropped=
for p in adkpeer einopeer langchaingopeer genkitpeer; do
	if ! go build ./$p 2>/dev/null; then
		dropped="$dropped $p"
		sed -i "/peers\/$p\"/d; /$p\./d" peers.go
		case $p in adkpeer) rm -rf cmd/adk-*;; einopeer) rm -rf cmd/eino-*;; *) rm -rf "cmd/${p%peer}";; esac
		rm -rf "$p"
	fi
done
go mod tidy >/dev/null

mkdir -p bin results
load() { echo "$(date -u +%H:%M:%S) $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a results/loadavg.txt; }
: > results/loadavg.txt
{ go version; echo "nproc $(nproc)"; grep -m1 'model name' /proc/cpuinfo; uname -sr; git -C "$project" rev-parse --short HEAD; echo "left out (do not build against this checkout):${dropped:- none}"; } > results/env.txt
peers=$(ls cmd | grep -E "^($PEERS)" | paste -sd, -)
echo "peers: $peers" | tee -a results/env.txt

# Build everything first, so no compiler runs while measuring.
go build -o bin/ $(printf './cmd/%s ' ${peers//,/ })
go test -c -o results/peers.test .
go build -o results/coldstart ./tools/coldstart
go build -o results/benchsum ./tools/benchsum

results/peers.test -test.run "TestPeers/($PEERS)" -test.count 1 -test.v 2>&1 | tail -n 12 | tee results/test.txt

load "before go test -bench"
results/peers.test -test.run '^$' -test.bench "Turn/($PEERS)" -test.benchmem \
	-test.count "$COUNT" -test.benchtime "$BENCHTIME" 2>&1 | tee results/bench.txt
load "after go test -bench"
results/benchsum < results/bench.txt | tee results/bench.md

load "before coldstart"
results/coldstart -bin bin -runs "$RUNS" -turns "$TURNS" | tee results/coldstart.md
load "after coldstart"
# The same binaries after 100 turns: the heap's baseline for the growth check.
results/coldstart -bin bin -runs 1 -turns 100 | tee results/heap100.md
load "after heap100"
out=${OUT:-$(mktemp -d)}
mkdir -p "$out" && cp results/*.md results/*.txt "$out"/
echo "results: $out (bench.md, coldstart.md, heap100.md, raw bench.txt)"

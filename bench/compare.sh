#!/usr/bin/env bash
# bench/compare.sh: compare Tern with Mosquitto and Mochi using tern bench.
#
#   bench/compare.sh                      full run (3 runs per scenario, all scenarios, ~25 min)
#   bench/compare.sh --quick              smoke run (small counts, 1 run each)
#   bench/compare.sh --rows               only the rows of issue 16 (~12 min for 3 brokers)
#   bench/compare.sh --brokers "tern mosquitto"
#   bench/compare.sh --baseline main --brokers "tern tern-base"   this tree against another revision
#   bench/compare.sh --scenarios "fanin_q0 latency_q1"          some of the scenarios
#   bench/compare.sh --summarize bench/results/20250101T000000Z   reprint a table
#   bench/compare.sh --persistent --brokers "tern tern-durable mosquitto mosquitto-persist" --scenarios "fanin_q1 fanout_q1"
#
# It builds tern (./cmd/tern) and bench/mochi, then for every scenario, every
# run and every broker: starts a FRESH broker pinned to CPU 1, runs one
# `tern bench ... --json --broker-pid PID` pinned to CPU 0, stops the broker
# (SIGTERM) and keeps the JSON. With the broker's pid, bench reads from /proc
# the broker's CPU time (utime+stime) from the first publish to the last
# delivery, divided by the messages delivered (CPU µs/msg), its RSS before
# and after (idle: KiB per connection) and its peak RSS (VmHWM).
#
# Writes: the publishers (and the subscribers' acknowledgements) send every
# packet in a write of its own (tern bench --write-per-publish), as devices
# do. The *_flood scenarios let bench coalesce what is queued into one
# write, as the load generators that flood a broker do: that amortises the
# broker's per-read costs and hides them. Brokers are interleaved run by run (scenario S run 1 on
# tern, mosquitto, mochi, then run 2 in the reverse order ...) so that load
# from other processes on the machine falls on all of them alike. At the end it prints one table
# (medians of the runs; loss: the worst run) and writes everything into
# bench/results/<UTC time>/ (bench/results/latest points to it).
#
# Fairness: every broker is started the same way and pinned the same way.
#   * CPU: broker on CPU 1 (taskset -c 1), load generator on CPU 0. The Go
#     programs (tern, mochi, tern bench) see one CPU, so GOMAXPROCS is 1 for
#     each; Mosquitto is single-threaded anyway. GOGC etc. are left alone.
#   * Listener: one plain TCP listener on 127.0.0.1, a port per broker
#     (tern 18831, mosquitto 18832, mochi 18833, mochi-default 18834).
#   * Auth: anonymous clients allowed, no ACL, no persistence.
#   * Queues: at most 1,000,000 messages queued per client on every broker
#     (tern --max-queued 1000000; mosquitto max_queued_messages 1000000,
#     max_queued_bytes 0 = unlimited; mochi MaximumClientWritesPending
#     1000000). Tern's and Mosquitto's queues grow on demand; Mochi's is a
#     channel allocated in full at CONNECT (8 MB a client), which shows in
#     its memory, connect and latency figures. The extra broker "mochi-default" runs
#     Mochi with its own defaults (8192 / 8192) to show that cost.
#   * In-flight window (QoS 1/2 messages sent to a client and not yet
#     acknowledged): 65535, the MQTT maximum, on every broker (tern
#     --max-inflight 65535; mosquitto max_inflight_messages 65535; mochi
#     MaximumInflight 65535). Mochi cannot bound the window of MQTT 3.1.1
#     clients at all, so the others get the same freedom rather than their
#     default of 20.
#   * Nagle: off everywhere (Go sets TCP_NODELAY on every connection and
#     neither Tern nor Mochi can turn it back on; mosquitto gets
#     set_tcp_nodelay true). Mosquitto with Nagle on (its default) delivers
#     1.4-2.3x more msgs/s when flooded, but its QoS 0 latency at 20,000
#     msgs/s rises from p99 <1 ms to ~40 ms: MOSQUITTO_NODELAY=false shows it.
#   * $SYS every 10 s on every broker (Mochi's default is 1 s).
#   * Logging: errors only, into <scenario>.<broker>.<run>.broker.log.
#   * Every bench run gets a fresh broker process (no retained messages,
#     sessions or heap left over from the previous scenario) and a fresh run
#     id (its own topics and client ids).
#   * Clients: MQTT 3.1.1, 64-byte payloads, clean sessions; publishers keep
#     64 QoS 1 messages in flight (tern bench defaults).
#
# Baseline: --baseline REV builds tern from git revision REV too (git
# archive into a temporary directory, then go build) and runs it as the
# broker "tern-base" (port 18835), added to the rotation if --brokers does
# not name it: the same scenarios, interleaved run by run with the others,
# so that a change to Tern is measured before and after in one run, on the
# same machine state. The load generator is this tree's tern in both cases.
# The table's tern/tern-base column is the ratio.
#
# Persistence: "tern" runs in memory (--in-memory), as the other brokers
# run without persistence. "tern-durable" is tern with its durable store
# (the default of tern broker: every QoS 1/2 message queued for a
# persistent session fsynced before its PUBACK, group commit) in a fresh
# data directory per run; TERN_SYNC=none makes it acknowledge before the
# fsync. "mosquitto-persist" is Mosquitto with persistence true (it saves
# a snapshot every autosave_interval, 1800 s, and at shutdown: a crash
# loses what came since). --persistent makes bench's subscribers use
# persistent sessions (clean session 0), without which no broker stores
# their messages.
#
# Environment: MOSQUITTO (path of mosquitto, default: /usr/sbin/mosquitto or
# the one on PATH), MOSQUITTO_NODELAY (true), RUNS (runs per scenario).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"

QUICK=0
BROKERS="tern mosquitto mochi"
SUMMARIZE=""
BASELINE=""
ONLY=""
PERSISTENT=0
ALL_SCENARIOS="fanin_q0 fanin_q1 fanout_q0 fanout_q1 topics topics_q1 retained latency_q0 latency_q1 connect idle_10k idle_19500 fanin_q0_flood fanin_q1_flood"
# The rows of issue 16 (--rows).
ROW_SCENARIOS="idle_10k idle_19500 latency_q0 latency_q1 fanin_q1 topics_q1 retained fanin_q0"
usage() { sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; echo "scenarios: $ALL_SCENARIOS"; }
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1 ;;
	--rows) ONLY=$ROW_SCENARIOS ;;
	--brokers) BROKERS="$2"; shift ;;
	--brokers=*) BROKERS="${1#*=}" ;;
	--baseline) BASELINE="$2"; shift ;;
	--baseline=*) BASELINE="${1#*=}" ;;
	--scenarios) ONLY="$2"; shift ;;
	--scenarios=*) ONLY="${1#*=}" ;;
	--summarize) SUMMARIZE="$2"; shift ;;
	--persistent) PERSISTENT=1 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

# summarize DIR: print the comparison table of the results in DIR.
summarize() {
	python3 - "$1" <<'PY'
import json, os, statistics, sys

d = sys.argv[1]
meta = json.load(open(os.path.join(d, "meta.json")))
brokers, scenarios = meta["brokers"], meta["scenarios"]

def runs(sc, b):
    out = []
    for r in range(1, meta["runs"][sc] + 1):
        p = os.path.join(d, f"{sc}.{b}.{r}.json")
        try:
            out.append(json.load(open(p)))
        except (OSError, ValueError):
            pass
    return out

def med(rs, k):
    # 0 or missing: not measured (no --broker-pid, or an older bench).
    v = [r[k] for r in rs if r.get(k)] if k in ("broker_cpu_us_per_msg", "peak_rss_kib", "kib_per_conn") else [r[k] for r in rs if k in r]
    return statistics.median(v) if v else None

def cpu_pct(r):
    return 100 * r["broker_cpu_s"] / r["duration_s"] if r.get("broker_cpu_s") and r.get("duration_s") else None

def med_fn(rs, fn):
    v = [x for x in map(fn, rs) if x is not None]
    return statistics.median(v) if v else None

def fmt_rate(v):
    if v is None: return "n/a"
    if v >= 1e6: return f"{v/1e6:.2f}M"
    if v >= 1e4: return f"{v/1e3:.1f}k"
    return f"{v:.0f}"

def fmt_ms(v):
    if v is None: return "n/a"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"

def fmt_num(v, nd=2):
    return "n/a" if v is None else f"{v:.{nd}f}"

def fmt_mib(v):
    return "n/a" if v is None else f"{v/1024:.0f}"

def fmt_loss(rs):
    if not rs: return "n/a"
    w = max(rs, key=lambda r: r["loss"])
    return "0" if w["loss"] == 0 else f"{w['loss']} ({w['loss_percent']:g}%)"

# (row label, metric label, value fn, formatter, better: ">1", "<1" or None)
def rows_for(sc):
    rate = ("msgs/s", lambda rs: med(rs, "delivered_per_sec"), fmt_rate, ">1")
    p99 = ("p99 ms", lambda rs: med(rs, "p99_ms"), fmt_ms, "<1")
    loss = ("loss (worst run)", None, None, None)
    cpu = ("broker CPU µs/msg", lambda rs: med(rs, "broker_cpu_us_per_msg"), fmt_num, "<1")
    busy = ("broker CPU %", lambda rs: med_fn(rs, cpu_pct), lambda v: fmt_num(v, 0), None)
    if sc.startswith("latency"):
        return [("p50 ms", lambda rs: med(rs, "p50_ms"), fmt_ms, "<1"), p99,
                ("p99.9 ms", lambda rs: med(rs, "p999_ms"), fmt_ms, "<1"), cpu, loss]
    if sc == "retained":
        return [rate, p99, ("peak RSS MiB", lambda rs: med(rs, "peak_rss_kib"), fmt_mib, "<1"), cpu, loss]
    if sc == "connect":
        return [("connects/s", lambda rs: med(rs, "connects_per_sec"), fmt_rate, ">1"),
                ("p99 CONNACK ms", lambda rs: med(rs, "p99_ms"), fmt_ms, "<1")]
    if sc.startswith("idle"):
        return [("KiB/conn", lambda rs: med(rs, "kib_per_conn"), fmt_num, "<1"),
                ("conns up", lambda rs: min(r["connections_up"] for r in rs) if rs else None,
                 lambda v: "n/a" if v is None else str(v), None)]
    return [rate, p99, cpu, busy, loss]

others = [b for b in brokers if b != "tern"] if "tern" in brokers else []
head = ["scenario", "metric"] + brokers + [f"tern/{b}" for b in others] + (["Tern better if"] if others else [])
table = []
for sc in scenarios:
    rs = {b: runs(sc, b) for b in brokers}
    for i, (label, fn, f, better) in enumerate(rows_for(sc)):
        row = [meta["labels"][sc] if i == 0 else "", label]
        if fn is None:  # loss
            row += [fmt_loss(rs[b]) for b in brokers] + ["" for _ in others] + ([""] if others else [])
        else:
            vals = {b: fn(rs[b]) for b in brokers}
            row += [f(vals[b]) for b in brokers]
            for b in others:
                t, o = vals.get("tern"), vals[b]
                row.append(f"{t/o:.2f}" if better and t is not None and o else "")
            if others:
                row.append({">1": "ratio > 1", "<1": "ratio < 1"}.get(better, ""))
        table.append(row)

w = [max(len(str(r[i])) for r in [head] + table) for i in range(len(head))]
line = lambda r: "  ".join(str(c).ljust(w[i]) if i < 2 else str(c).rjust(w[i]) for i, c in enumerate(r)).rstrip()
print(f"tern bench comparison: {meta['mode']} mode, {meta['started']} UTC, results in {d}")
print(f"values: median of {meta['throughput_runs']} run(s) per scenario; "
      "loss: the worst run; ratios are tern / other")
print(f"load average: before {meta.get('loadavg_before', '?')}, after {meta.get('loadavg_after', '?')}")
if meta["mode"] == "quick":
    print("quick mode: counts and connections are smaller than the labels say (see bench_args in the JSON)")
if meta.get("baseline"):
    print(f"tern-base: built from {meta['baseline']}; tern: this tree")
print()
print(line(head))
print(line(["-" * x for x in w]))
for r in table:
    print(line(r))

notes = []
for sc in scenarios:
    for b in brokers:
        rs = runs(sc, b)
        n = meta["runs"][sc]
        if len(rs) < n:
            notes.append(f"{b} {sc}: {n - len(rs)} of {n} run(s) failed (see {sc}.{b}.*.log)")
        for r in rs:
            bits = []
            if r["loss"]: bits.append(f"lost {r['loss']} of {r['expected']} ({r['loss_percent']:g}%)")
            if r["duplicates"]: bits.append(f"{r['duplicates']} duplicates")
            if r["reordered"]:
                why = " (not a fault: each retained message has its own topic, and MQTT orders messages per topic only)" if r["scenario"] == "retained" else ""
                bits.append(f"{r['reordered']} reordered{why}")
            if r["invalid"]: bits.append(f"{r['invalid']} invalid payloads")
            if r["truncated"]: bits.append("publishing hit the max duration")
            if r["errors"]: bits.append(f"{r['errors']} connection errors ({r['first_error']})")
            if r["connect_failures"]: bits.append(f"{r['connect_failures']} connect failures")
            if r["scenario"] in ("connect", "idle") and r["connections_up"] < r["connections"]:
                bits.append(f"only {r['connections_up']}/{r['connections']} connections up")
            if bits:
                notes.append(f"{b} {sc} run {r['run_no']}: " + "; ".join(bits))
for x in meta.get("events", []):
    notes.append(x)
if os.path.exists(os.path.join(d, "events.txt")):
    notes += [l.rstrip() for l in open(os.path.join(d, "events.txt")) if l.strip()]
# The rows of issue 16, in its layout: a column per broker (median of the
# runs, [lowest-highest] when they differ by more than 10 %) and Tern's target.
def spread(rs, fn, f):
    v = sorted(x for x in map(fn, rs) if x is not None)
    if not v: return "n/a"
    m = f(statistics.median(v))
    if len(v) > 1 and v[0] > 0 and v[-1] / v[0] > 1.1:
        m += f" [{f(v[0])}–{f(v[-1])}]"
    return m
g = lambda k: (lambda r: r.get(k) or None)
ISSUE_ROWS = [
    ("memory per idle connection, 10,000 connections (RSS delta), KiB", "idle_10k", g("kib_per_conn"), fmt_num, "≤ 1"),
    ("memory per idle connection, 19,500 connections (RSS delta), KiB", "idle_19500", g("kib_per_conn"), fmt_num, "≤ 1"),
    ("broker CPU per message at a fixed 20,000 msgs/s, 10 → 1, QoS 0, µs", "latency_q0", g("broker_cpu_us_per_msg"), fmt_num, "≤ 10"),
    ("same at QoS 1, µs", "latency_q1", g("broker_cpu_us_per_msg"), fmt_num, "≤ 15"),
    ("fan-in 10 → 1 QoS 1, msgs/s (closed loop, window 1000)", "fanin_q1", g("delivered_per_sec"), fmt_rate, "≥ 1.5 × the best peer"),
    ("  broker CPU % during it", "fanin_q1", cpu_pct, lambda v: fmt_num(v, 0), ""),
    ("1,000 topics → #, QoS 1, msgs/s", "topics_q1", g("delivered_per_sec"), fmt_rate, "≥ 1.5 × the best peer"),
    ("  broker CPU % during it", "topics_q1", cpu_pct, lambda v: fmt_num(v, 0), ""),
    ("peak RSS holding 100,000 retained 64-byte messages, MiB", "retained", g("peak_rss_kib"), fmt_mib, "≤ 49"),
    ("fan-in QoS 0 broker CPU per message, µs", "fanin_q0", g("broker_cpu_us_per_msg"), fmt_num, "≤ 2"),
    ("p50 latency at 20,000 msgs/s, QoS 0, ms", "latency_q0", g("p50_ms"), fmt_ms, ""),
    ("p99 / p99.9 latency at 20,000 msgs/s, QoS 0, ms", "latency_q0", None, None, ""),
    ("p50 latency at 20,000 msgs/s, QoS 1, ms", "latency_q1", g("p50_ms"), fmt_ms, ""),
    ("p99 / p99.9 latency at 20,000 msgs/s, QoS 1, ms", "latency_q1", None, None, "p99 ≤ 0.5 in every run"),
]
irows = []
for label, sc, fn, f, target in ISSUE_ROWS:
    if sc not in scenarios:
        continue
    row = [label]
    for b in brokers:
        rs = runs(sc, b)
        if fn is None:
            row.append(spread(rs, g("p99_ms"), fmt_ms) + " / " + spread(rs, g("p999_ms"), fmt_ms))
        else:
            row.append(spread(rs, fn, f))
    irows.append(row + [target])
if irows:
    ih = ["case"] + brokers + ["Tern's target"]
    print("\nissue 16 rows (median of the runs; [lowest–highest] when they differ by more than 10 %):\n")
    print("| " + " | ".join(ih) + " |")
    print("|" + "---|" * len(ih))
    for r in irows:
        print("| " + " | ".join(r) + " |")

if notes:
    print("\nanomalies:")
    for x in notes:
        print("  " + x)
PY
}

if [ -n "$SUMMARIZE" ]; then
	summarize "$SUMMARIZE"
	exit 0
fi

if [ -n "$BASELINE" ] && [[ " $BROKERS " != *" tern-base "* ]]; then
	BROKERS="$BROKERS tern-base"
fi
for b in $BROKERS; do
	case "$b" in
	tern|tern-durable|mosquitto|mosquitto-persist|mochi|mochi-default) ;;
	tern-base) [ -n "$BASELINE" ] || { echo "compare.sh: broker tern-base needs --baseline REV (the git revision to build it from)" >&2; exit 2; } ;;
	*) echo "compare.sh: unknown broker $b (tern, tern-durable, tern-base, mosquitto, mosquitto-persist, mochi, mochi-default)" >&2; exit 2 ;;
	esac
done
BASE_COMMIT=""
if [ -n "$BASELINE" ]; then
	BASE_COMMIT=$(git -C "$ROOT" rev-parse --verify --quiet "$BASELINE^{commit}") || {
		echo "compare.sh: --baseline $BASELINE is not a git revision of $ROOT (try a commit, a branch or a tag: git log --oneline)" >&2; exit 2; }
fi
SCENARIOS=$ALL_SCENARIOS
if [ -n "$ONLY" ]; then
	for sc in $ONLY; do
		[[ " $ALL_SCENARIOS " == *" $sc "* ]] || { echo "compare.sh: unknown scenario $sc in --scenarios (one of: $ALL_SCENARIOS)" >&2; exit 2; }
	done
	SCENARIOS=$ONLY
fi
command -v python3 >/dev/null || { echo "compare.sh: needs python3" >&2; exit 1; }
command -v taskset >/dev/null || { echo "compare.sh: needs taskset (util-linux)" >&2; exit 1; }
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
MOSQUITTO_NODELAY=${MOSQUITTO_NODELAY:-true}
if [[ " $BROKERS " == *" mosquitto "* ]] && [ ! -x "$MOSQUITTO" ]; then
	echo "compare.sh: mosquitto not found (set MOSQUITTO=/path/to/mosquitto)" >&2; exit 1
fi
# N idle connections need N descriptors and a few in the broker and in
# bench: raise the soft limit to the hard one; an idle scenario that needs
# more is skipped with a note (not run and reported as failed connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
# fds_ok SC: whether the descriptor limit allows scenario SC.
fds_ok() {
	local need
	case "$1" in
	idle_*|connect) need=$(( $(sed -n 's/.*--connections \([0-9]*\).*/\1/p' <<<"${!2}") + 100 )) ;;
	*) return 0 ;;
	esac
	[ "$FD_LIMIT" = unlimited ] || [ "$FD_LIMIT" -ge "$need" ] && return 0
	echo "compare.sh: $1 skipped: it needs $need file descriptors and ulimit -n is $FD_LIMIT (hard limit $(ulimit -Hn)); raise the hard limit (ulimit -Hn as root, or nofile in /etc/security/limits.conf) and run again" | tee -a "$OUT/events.txt" >&2
	return 1
}

# Scenarios: id, label, tern bench arguments (full, quick), run count.
if [ "$QUICK" = 1 ]; then
	TRUNS=1; MODE=quick
	S_fanin_q0="fanin --qos 0 --count 20000"
	S_fanin_q1="fanin --qos 1 --count 10000"
	S_fanout_q0="fanout --qos 0 --count 500"
	S_fanout_q1="fanout --qos 1 --count 500"
	S_topics="topics --count 20000"
	S_topics_q1="topics --qos 1 --count 20000 --inflight 1000"
	S_retained="retained --count 10000"
	S_latency_q0="latency --qos 0 --rate 20000 --duration 2s"
	S_latency_q1="latency --qos 1 --rate 20000 --duration 2s"
	S_connect="connect --connections 1000"
	S_idle_10k="idle --connections 2000 --duration 2s"
	S_idle_19500="idle --connections 3900 --duration 2s"
	S_fanin_q0_flood="fanin --qos 0 --count 20000"
	S_fanin_q1_flood="fanin --qos 1 --count 10000"
else
	TRUNS=3; MODE=full
	S_fanin_q0="fanin --qos 0 --count 200000"
	S_fanin_q1="fanin --qos 1 --count 150000 --inflight 1000"
	S_fanout_q0="fanout --qos 0 --count 8000"
	S_fanout_q1="fanout --qos 1 --count 6000"
	S_topics="topics --count 400000"
	# --duration bounds a slow broker's run (mochi: ~2,000 msgs/s here);
	# what it delivered in that time gives its rate, and the anomalies say so.
	S_topics_q1="topics --qos 1 --count 100000 --inflight 1000 --duration 15s"
	S_retained="retained --count 100000"
	S_latency_q0="latency --qos 0 --rate 20000 --duration 10s"
	S_latency_q1="latency --qos 1 --rate 20000 --duration 10s"
	S_connect="connect --connections 5000"
	S_idle_10k="idle --connections 10000 --duration 5s"
	S_idle_19500="idle --connections 19500 --duration 5s"
	S_fanin_q0_flood="fanin --qos 0 --count 500000"
	S_fanin_q1_flood="fanin --qos 1 --count 250000"
fi
# Every message scenario but the floods: one write per PUBLISH.
for sc in fanin_q0 fanin_q1 fanout_q0 fanout_q1 topics topics_q1 latency_q0 latency_q1; do
	var="S_$sc"
	printf -v "$var" '%s --write-per-publish' "${!var}"
done
TRUNS=${RUNS:-$TRUNS}
declare -A LABEL=(
	[fanin_q0]="fan-in 10->1 QoS 0" [fanin_q1]="fan-in 10->1 QoS 1"
	[fanout_q0]="fan-out 1->100 QoS 0" [fanout_q1]="fan-out 1->100 QoS 1"
	[topics]="1000 topics -> # QoS 0" [topics_q1]="1000 topics -> # QoS 1" [retained]="retained -> new # sub"
	[latency_q0]="20k msgs/s QoS 0" [latency_q1]="20k msgs/s QoS 1"
	[connect]="connect" [idle_10k]="10,000 idle conns" [idle_19500]="19,500 idle conns"
	[fanin_q0_flood]="fan-in QoS 0 flood" [fanin_q1_flood]="fan-in QoS 1 flood"
)
declare -A PORT=([tern]=18831 [mosquitto]=18832 [mochi]=18833 [mochi-default]=18834 [tern-base]=18835 [tern-durable]=18836 [mosquitto-persist]=18837)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH/results/$STAMP"
BIN="$OUT/bin"
mkdir -p "$BIN"
ln -sfn "$STAMP" "$BENCH/results/latest"
LOAD_BEFORE=$(cat /proc/loadavg)
echo "compare.sh: $MODE run of [$BROKERS] into $OUT"
echo "compare.sh: load average before: $LOAD_BEFORE"

echo "compare.sh: building tern and bench/mochi"
(cd "$ROOT" && go build -o "$BIN/tern" ./cmd/tern)
(cd "$BENCH/mochi" && go build -o "$BIN/mochi" .)
TERN="$BIN/tern"
if [ -n "$BASELINE" ]; then
	echo "compare.sh: building tern-base from $BASELINE ($BASE_COMMIT)"
	BASE_SRC=$(mktemp -d)
	trap 'rm -rf "$BASE_SRC"' EXIT
	git -C "$ROOT" archive "$BASE_COMMIT" | tar -x -C "$BASE_SRC"
	(cd "$BASE_SRC" && go build -o "$BIN/tern-base" ./cmd/tern)
	rm -rf "$BASE_SRC"
fi

cat >"$OUT/mosquitto.conf" <<EOF
# written by bench/compare.sh
listener ${PORT[mosquitto]} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 65535
set_tcp_nodelay $MOSQUITTO_NODELAY
sys_interval 10
log_dest stderr
log_type error
EOF

# in_memory BIN: --in-memory if that tern knows it (an older tern-base is
# in memory anyway).
in_memory() { "$1" broker --help 2>/dev/null | grep -q -- --in-memory && echo --in-memory || true; }

# broker_cmd B LOG: the command line of broker B (LOG names its data).
broker_cmd() {
	case "$1" in
	tern) echo "$TERN broker --listen tcp://127.0.0.1:${PORT[tern]} --max-queued 1000000 --max-inflight 65535 --sys-interval 10s --log-level error $(in_memory "$TERN")" ;;
	tern-durable) echo "$TERN broker --listen tcp://127.0.0.1:${PORT[tern-durable]} --max-queued 1000000 --max-inflight 65535 --sys-interval 10s --log-level error --data-dir ${2:-$OUT/tern-durable}.data --store-sync ${TERN_SYNC:-always}" ;;
	tern-base) echo "$BIN/tern-base broker --listen tcp://127.0.0.1:${PORT[tern-base]} --max-queued 1000000 --max-inflight 65535 --sys-interval 10s --log-level error $(in_memory "$BIN/tern-base")" ;;
	mosquitto) echo "$MOSQUITTO -c $OUT/mosquitto.conf" ;;
	mosquitto-persist)
		sed -e "s/^listener .*/listener ${PORT[mosquitto-persist]} 127.0.0.1/" -e "s|^persistence false|persistence true\npersistence_location ${2:-x}.data/|" "$OUT/mosquitto.conf" >"${2:-$OUT/mosquitto-persist}.conf"
		mkdir -p "${2:-$OUT/mosquitto-persist}.data"
		echo "$MOSQUITTO -c ${2:-$OUT/mosquitto-persist}.conf" ;;
	mochi) echo "$BIN/mochi -addr 127.0.0.1:${PORT[mochi]} -writes-pending 1000000 -max-inflight 65535 -sys-interval 10 -log-level error" ;;
	mochi-default) echo "$BIN/mochi -addr 127.0.0.1:${PORT[mochi-default]} -writes-pending 8192 -max-inflight 8192 -sys-interval 10 -log-level error" ;;
	esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

BROKER_PID=""
# start_broker B LOG: start broker B pinned to CPU 1; sets BROKER_PID.
start_broker() {
	local b=$1 log=$2 port=${PORT[$1]}
	if port_open "$port"; then
		echo "compare.sh: port $port is already in use; cannot start $b" >&2
		return 1
	fi
	# shellcheck disable=SC2046
	taskset -c 1 $(broker_cmd "$b" "$log") >>"$log" 2>&1 &
	BROKER_PID=$!
	for _ in $(seq 200); do
		port_open "$port" && return 0
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "compare.sh: $b did not start listening on $port (see $log)" >&2
	kill -KILL "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=""
	return 1
}

# stop_broker: SIGTERM, then SIGKILL after 15 s. Returns 1 if it had died.
stop_broker() {
	local pid=$BROKER_PID alive=0
	BROKER_PID=""
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null && alive=1
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	[ "$alive" = 1 ]
}
trap 'stop_broker || true' EXIT

# TAG_PY IN B RUN ARGS OUT: copy bench's JSON, adding broker, run_no and
# bench_args; print a one-line summary.
TAG_PY='
import json, sys
src, b, r, args, dst = sys.argv[1:]
d = json.load(open(src))
d.update(broker=b, run_no=int(r), bench_args=args)
json.dump(d, open(dst, "w"), indent=2)
if d["scenario"] in ("connect", "idle"):
    print("%d/%d up, %.0f connects/s, p99 %.2f ms, %.2f KiB/conn" % (d["connections_up"], d["connections"], d["connects_per_sec"], d["p99_ms"], d["kib_per_conn"]))
else:
    print("%.0f msgs/s, loss %d, p99 %.2f ms, p99.9 %.2f ms, broker %.2f µs/msg, peak %d MiB" % (d["delivered_per_sec"], d["loss"], d["p99_ms"], d["p999_ms"], d["broker_cpu_us_per_msg"], d["peak_rss_kib"] // 1024))
'
trap 'exit 130' INT TERM

: >"$OUT/events.txt"
RUNS_JSON=""
for sc in $SCENARIOS; do
	var="S_$sc"
	args=${!var}
	n=$TRUNS
	fds_ok "$sc" "$var" || n=0
	RUNS_JSON+="\"$sc\": $n, "
	for r in $(seq "$n"); do
		# Every other run in the reverse order, so that no broker always
		# runs first (after the build, or after a scenario change).
		order=$BROKERS
		[ $((r % 2)) = 0 ] && order=$(printf '%s\n' $BROKERS | tac | tr '\n' ' ')
		for b in $order; do
			base="$OUT/$sc.$b.$r"
			if ! start_broker "$b" "$base.broker.log"; then
				echo "$b $sc run $r: broker did not start" >>"$OUT/events.txt"
				continue
			fi
			# Every broker: CPU per message, RSS and peak RSS from /proc.
			extra=(--broker-pid "$BROKER_PID")
			t0=$(date +%s%N)
			rc=0
			# shellcheck disable=SC2086
			[ "$PERSISTENT" = 1 ] && extra+=(--persistent)
			taskset -c 0 "$TERN" bench $args "${extra[@]}" --url "tcp://127.0.0.1:${PORT[$b]}" \
				--json --interval 5s >"$base.json.tmp" 2>"$base.log" || rc=$?
			t1=$(date +%s%N)
			if ! stop_broker; then
				echo "$b $sc run $r: the broker had died during the run (see $base.broker.log)" >>"$OUT/events.txt"
			fi
			if [ "$rc" = 0 ] && [ -s "$base.json.tmp" ]; then
				# Tag the raw JSON with broker, run number and arguments.
				summary=$(python3 -c "$TAG_PY" "$base.json.tmp" "$b" "$r" "$args" "$base.json")
				rm -f "$base.json.tmp"
			else
				mv -f "$base.json.tmp" "$base.failed.json" 2>/dev/null || true
				echo "$b $sc run $r: tern bench exited with $rc: $(tail -n 1 "$base.log")" >>"$OUT/events.txt"
				summary="FAILED (exit $rc, see $base.log)"
			fi
			printf 'compare.sh: %-10s %-13s run %d/%d  %5.1fs  %s\n' "$b" "$sc" "$r" "$n" "$(( (t1 - t0) / 100000000 ))e-1" "$summary"
		done
	done
done
LOAD_AFTER=$(cat /proc/loadavg)
echo "compare.sh: load average after: $LOAD_AFTER"

labels=""
for sc in $SCENARIOS; do labels+="\"$sc\": \"${LABEL[$sc]}\", "; done
blist=""
for b in $BROKERS; do blist+="\"$b\", "; done
cat >"$OUT/meta.json" <<EOF
{
  "mode": "$MODE",
  "started": "$STAMP",
  "brokers": [${blist%, }],
  "scenarios": [$(for sc in $SCENARIOS; do printf '"%s", ' "$sc"; done | sed 's/, $//')],
  "labels": {${labels%, }},
  "runs": {${RUNS_JSON%, }},
  "throughput_runs": $TRUNS,
  "loadavg_before": "$LOAD_BEFORE",
  "loadavg_after": "$LOAD_AFTER",
  "nproc": $(nproc),
  "go": "$(go version)",
  "mosquitto": "$("$MOSQUITTO" -h 2>/dev/null | head -n 1 || true)",
  "mosquitto_nodelay": "$MOSQUITTO_NODELAY",
  "baseline": "${BASELINE:+$BASELINE ($BASE_COMMIT)}",
  "kernel": "$(uname -r)"
}
EOF
for b in $BROKERS; do echo "$b: $(broker_cmd "$b")"; done >"$OUT/brokers.txt"
rm -rf "$BIN"
find "$OUT" -name "*.broker.log" -size 0 -delete

echo
summarize "$OUT" | tee "$OUT/table.txt"

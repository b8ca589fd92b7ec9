#!/usr/bin/env bash
# Load benchmark: the mock provider alone versus the gateway in front of it, same load, same run.
# Drives both with oha (installed with `cargo install oha --locked` if missing) and prints a
# Markdown table for BENCHMARKS.md.
#
#   bash benches/load.sh                      # DURATION=10s MEM_REQUESTS=1000000 by default
#   DURATION=5s MEM_REQUESTS=0 bash benches/load.sh   # quicker, no memory run
#
# The fixed-rate rows (5,000 rps), whose p99 is the figure most shaken by the VM's noise, run
# ROUNDS times (3 by default), direct and gateway interleaved, and the table gives each row's
# median; every round's p99 is printed below it.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
MEM_REQUESTS="${MEM_REQUESTS:-1000000}"
ROUNDS="${ROUNDS:-3}"
KEY="bench-master-key-0001"

command -v oha >/dev/null || cargo install oha --locked
cargo build --release --bins --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port)
GW_PORT=$(free_port)
WORK=$(mktemp -d)
cat > "$WORK/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
data_dir = "$WORK/data"
[auth]
master_keys = ["$KEY"]
[[providers]]
name = "mock"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
[[models]]
name = "bench-model"
targets = [{ provider = "mock", model = "mock-gpt" }]
[[models]]
name = "mock-gpt"
targets = [{ provider = "mock" }]
# Metering is on by default (a usage record per request, batched); limits are on for users and
# keys with a tier far above what the bench reaches, so every check runs and none refuses.
[pricing.models."mock-gpt"]
input_per_mtok = 2.5
output_per_mtok = 10.0
[limits]
key_tier = "bench"
user_tier = "bench"
[limits.tiers.bench]
requests_per_minute = 100000000
tokens_per_minute = 100000000000
max_concurrent = 10000
daily_budget_usd = 1000000.0
monthly_budget_usd = 10000000.0
[limits.models."mock-gpt"]
requests_per_minute = 100000000
TOML

RUST_LOG=warn target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
RUST_LOG=warn target/release/gateway --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
trap 'kill $MOCK_PID $GW_PID ${SAMPLER_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && break
  sleep 0.1
done

BODY='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
DIRECT="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
GATEWAY="http://127.0.0.1:$GW_PORT/v1/chat/completions"

# A user with an API key and an access token, to compare with the master key (no database).
API="http://127.0.0.1:$GW_PORT/api/v1"
ACCESS=$(curl -sf "$API/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 1"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
API_KEY=$(curl -sf "$API/keys" -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' \
  -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

# run NAME URL oha-args... -> one JSON line in $WORK/results.jsonl (credential: $CRED or $KEY)
run() {
  local name=$1 url=$2; shift 2
  oha --no-tui --output-format json "$@" -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer ${CRED:-$KEY}" -d "$BODY" "$url" >"$WORK/out.json"
  python3 - "$name" "$WORK/out.json" >>"$WORK/results.jsonl" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
codes = d.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
p = d["latencyPercentiles"]
print(json.dumps({"name": name, "rps": d["summary"]["requestsPerSec"], "p50": p["p50"] * 1e3,
                  "p99": p["p99"] * 1e3, "ok": ok, "total": total}))
PY
}

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$GW_PID/status"; }

# Warm both paths (connection pools, allocator).
oha --no-tui --output-format quiet -z 2s -c 64 -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" -d "$BODY" "$GATEWAY" >/dev/null

# Sample the usage writer's backlog every half second through the timed runs.
metric() { curl -sf "http://127.0.0.1:$GW_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
( while sleep 0.5; do metric gateway_usage_backlog; done ) >"$WORK/backlog.txt" 2>/dev/null &
SAMPLER_PID=$!

for target in direct gateway; do
  url=$DIRECT; [ "$target" = gateway ] && url=$GATEWAY
  run "$target c=64" "$url" -z "$DURATION" -w -c 64
  run "$target c=1" "$url" -z "$DURATION" -w -c 1
done

# The same gateway, authenticated by a database-backed credential (resolved once, then cached).
for cred in apikey access; do
  CRED=$API_KEY; [ "$cred" = access ] && CRED=$ACCESS
  export CRED
  run "$cred c=64" "$GATEWAY" -z "$DURATION" -w -c 64
  run "$cred c=1" "$GATEWAY" -z "$DURATION" -w -c 1
done
unset CRED

# Fixed rate, every credential, in rounds (see the top).
for round in $(seq "$ROUNDS"); do
  for target in direct gateway apikey access; do
    url=$GATEWAY; CRED=$KEY
    case $target in
      direct) url=$DIRECT ;;
      apikey) CRED=$API_KEY ;;
      access) CRED=$ACCESS ;;
    esac
    run "$target 5000rps#$round" "$url" -z "$DURATION" -w -c 64 -q 5000 --latency-correction
  done
done

# Usage writing keeps up: the largest backlog sampled, the backlog right after the last timed
# run, and the records written against the requests sent (every request is metered).
kill $SAMPLER_PID 2>/dev/null || true
BACKLOG_MAX=$(sort -g "$WORK/backlog.txt" | tail -1)
BACKLOG_END=$(metric gateway_usage_backlog)
SENT=$(python3 -c 'import json,sys; print(sum(json.loads(l)["total"] for l in open(sys.argv[1]) if not json.loads(l)["name"].startswith("direct")))' "$WORK/results.jsonl")
WRITTEN=$(metric gateway_usage_records_written_total)

RSS_START=$(rss_mb)
if [ "$MEM_REQUESTS" -gt 0 ]; then
  oha --no-tui --output-format quiet -n "$MEM_REQUESTS" -c 64 -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" -d "$BODY" "$GATEWAY" >/dev/null
  RSS_1=$(rss_mb)
  oha --no-tui --output-format quiet -n "$MEM_REQUESTS" -c 64 -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" -d "$BODY" "$GATEWAY" >/dev/null
  RSS_2=$(rss_mb)
fi

python3 - "$WORK/results.jsonl" <<'PY'
import json, sys, statistics
rows, rounds = {}, {}
for r in map(json.loads, open(sys.argv[1])):
    rounds.setdefault(r["name"].split("#")[0], []).append(r)
# A row run in rounds: the median of each figure, the requests of every round.
for name, runs in rounds.items():
    rows[name] = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    rows[name].update(ok=sum(r["ok"] for r in runs), total=sum(r["total"] for r in runs))
print("| load | direct rps | gateway rps | ratio | direct p50 / p99 ms | gateway p50 / p99 ms | added p50 / p99 ms | non-2xx |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for load in ["c=64", "c=1", "5000rps"]:
    d, g = rows[f"direct {load}"], rows[f"gateway {load}"]
    bad = (d["total"] - d["ok"]) + (g["total"] - g["ok"])
    print(f"| {load} | {d['rps']:.0f} | {g['rps']:.0f} | {g['rps']/d['rps']:.2f} | "
          f"{d['p50']:.3f} / {d['p99']:.3f} | {g['p50']:.3f} / {g['p99']:.3f} | "
          f"{g['p50']-d['p50']:.3f} / {g['p99']-d['p99']:.3f} | {bad} |")
print()
print("| load | credential | rps | p50 / p99 ms | vs master key p50 / p99 ms | non-2xx |")
print("| --- | --- | --- | --- | --- | --- |")
for load in ["c=64", "c=1", "5000rps"]:
    m = rows[f"gateway {load}"]
    for cred, label in [("gateway", "master key"), ("apikey", "API key"), ("access", "access token (JWT)")]:
        r = rows[f"{cred} {load}"]
        print(f"| {load} | {label} | {r['rps']:.0f} | {r['p50']:.3f} / {r['p99']:.3f} | "
              f"{r['p50']-m['p50']:+.3f} / {r['p99']-m['p99']:+.3f} | {r['total'] - r['ok']} |")
print()
for name, runs in rounds.items():
    if len(runs) > 1:
        print(f"{name} p99 by round (ms): " + ", ".join(f"{r['p99']:.3f}" for r in runs))
PY
echo
echo "usage writer: largest backlog sampled ${BACKLOG_MAX:-?}, ${BACKLOG_END:-?} right after the last timed run; ${WRITTEN:-?} records written for ${SENT} timed gateway requests (+ warm-up and set-up requests)"
if [ "$MEM_REQUESTS" -gt 0 ]; then
  echo "gateway RSS: ${RSS_START} MB after the timed runs, ${RSS_1} MB after +${MEM_REQUESTS} requests, ${RSS_2} MB after +${MEM_REQUESTS} more"
fi

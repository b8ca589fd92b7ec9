#!/usr/bin/env bash
# Issue 5 attribution: what metering and limits each cost. The same release build runs as four
# gateways side by side, switched by config (neither, metering only, limits only, both), master
# key, in front of one mock. One c=64 row (5 s) per variant, then ROUNDS rounds (3 by default) of
# 5,000 rps rows (5 s) going through direct, then each variant in turn, so the VM's drifting
# noise falls on all of them alike; the table gives medians and every round's p99.
# Run after `cargo build --release --bins` (or load.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
VARIANTS="none metering limits both"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
trap 'kill ${PIDS[@]} 2>/dev/null; rm -rf "$WORK"' EXIT
MOCK_PORT=$(free_port)
target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
PIDS+=($!)
declare -A URL
for variant in $VARIANTS; do
  port=$(free_port); mkdir -p "$WORK/$variant"
  {
  echo "[server]"; echo "listen = \"127.0.0.1:$port\""; echo "data_dir = \"$WORK/$variant\""
  echo "[auth]"; echo 'master_keys = ["bench-master-key-0001"]'
  echo "[[providers]]"; echo 'name = "mock"'; echo "base_url = \"http://127.0.0.1:$MOCK_PORT/v1\""
  echo "[[models]]"; echo 'name = "mock-gpt"'; echo 'targets = [{ provider = "mock" }]'
  case $variant in none|limits) echo "[metering]"; echo "enabled = false";; esac
  case $variant in limits|both) printf '[limits]\n[limits.models."mock-gpt"]\nrequests_per_minute = 100000000\ntokens_per_minute = 100000000000\nmax_concurrent = 100000\ndaily_budget_usd = 1000000.0\n';; esac
  } > "$WORK/$variant/gw.toml"
  RUST_LOG=warn target/release/gateway --config "$WORK/$variant/gw.toml" >/dev/null 2>&1 &
  PIDS+=($!)
  URL[$variant]="http://127.0.0.1:$port/v1/chat/completions"
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
URL[direct]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
BODY='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
load() { # NAME oha-args...
  local name=$1; shift
  oha --no-tui --output-format json -w "$@" -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer bench-master-key-0001" -d "$BODY" "${URL[${name%% *}]}" \
    | python3 -c "import json,sys; d=json.load(sys.stdin); p=d['latencyPercentiles']; print(json.dumps({'name': '$name', 'rps': d['summary']['requestsPerSec'], 'p50': p['p50']*1e3, 'p99': p['p99']*1e3}))" \
    >> "$WORK/results.jsonl"
}
for variant in $VARIANTS; do
  oha --no-tui --output-format quiet -z 2s -c 64 -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer bench-master-key-0001" -d "$BODY" "${URL[$variant]}" >/dev/null
  load "$variant c64" -z 5s -c 64
done
for _ in $(seq "$ROUNDS"); do
  for name in direct $VARIANTS; do
    load "$name 5000" -z 5s -c 64 -q 5000 --latency-correction
  done
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys, statistics
runs = {}
for r in map(json.loads, open(sys.argv[1])):
    runs.setdefault(r["name"], []).append(r)
med = lambda name, k: statistics.median(r[k] for r in runs[name])
labels = {"none": "neither (`metering.enabled = false`, no `[limits]`)", "metering": "metering only",
          "limits": "limits only", "both": "both"}
print("| variant | c=64 rps | c=64 p50 / p99 ms | 5,000 rps p50 / p99 ms (median) | 5,000 rps p99 by round | added p99 vs neither |")
print("| --- | --- | --- | --- | --- | --- |")
d = "direct 5000"
print(f"| direct to the mock | | | {med(d,'p50'):.3f} / {med(d,'p99'):.3f} | "
      + ", ".join(f"{r['p99']:.3f}" for r in runs[d]) + " | |")
for v, label in labels.items():
    c, f = f"{v} c64", f"{v} 5000"
    print(f"| {label} | {med(c,'rps'):.0f} | {med(c,'p50'):.3f} / {med(c,'p99'):.3f} | "
          f"{med(f,'p50'):.3f} / {med(f,'p99'):.3f} | "
          + ", ".join(f"{r['p99']:.3f}" for r in runs[f])
          + f" | {med(f,'p99') - med('none 5000','p99'):+.3f} |")
PY

#!/usr/bin/env bash
# Issue 5 attribution: the same release build with metering and/or limits switched off by config,
# master key, 5 s rows at c=64 and at 5,000 rps. Run after `cargo build --release --bins` (or load.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port)
target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null' EXIT
BODY='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
for variant in none metering limits both; do
  GW_PORT=$(free_port); WORK=$(mktemp -d)
  {
  echo "[server]"; echo "listen = \"127.0.0.1:$GW_PORT\""; echo "data_dir = \"$WORK\""
  echo "[auth]"; echo 'master_keys = ["bench-master-key-0001"]'
  echo "[[providers]]"; echo 'name = "mock"'; echo "base_url = \"http://127.0.0.1:$MOCK_PORT/v1\""
  echo "[[models]]"; echo 'name = "mock-gpt"'; echo 'targets = [{ provider = "mock" }]'
  case $variant in none|limits) echo "[metering]"; echo "enabled = false";; esac
  case $variant in limits|both) printf '[limits]\n[limits.models."mock-gpt"]\nrequests_per_minute = 100000000\ntokens_per_minute = 100000000000\nmax_concurrent = 100000\ndaily_budget_usd = 1000000.0\n';; esac
  } > "$WORK/gw.toml"
  RUST_LOG=warn target/release/gateway --config "$WORK/gw.toml" >/dev/null 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && break; sleep 0.1; done
  U="http://127.0.0.1:$GW_PORT/v1/chat/completions"
  oha --no-tui --output-format quiet -z 2s -c 64 -m POST -H 'content-type: application/json' -H "authorization: Bearer bench-master-key-0001" -d "$BODY" "$U" >/dev/null
  for load in "c64:-c 64" "5000:-c 64 -q 5000 --latency-correction"; do
    name=${load%%:*}; args=${load#*:}
    oha --no-tui --output-format json -z 5s -w $args -m POST -H 'content-type: application/json' -H "authorization: Bearer bench-master-key-0001" -d "$BODY" "$U" \
      | python3 -c "import json,sys; d=json.load(sys.stdin); p=d['latencyPercentiles']; print('$variant $name rps=%.0f p50=%.3f p99=%.3f' % (d['summary']['requestsPerSec'], p['p50']*1e3, p['p99']*1e3))"
  done
  kill $GW_PID; wait $GW_PID 2>/dev/null || true; rm -rf "$WORK"
done

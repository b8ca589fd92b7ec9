#!/usr/bin/env bash
# CPU instructions per /v1 request, counted by valgrind's callgrind: unlike times on the shared
# 2-core VM, the count repeats from run to run, so small hot-path changes show. The release
# gateway runs under callgrind in front of the mock (native), master key, the four variants of
# attribution.sh (neither / metering only / limits only / both; limits on the model with every
# kind of limit, a price for the model); each variant serves 1,000 and then 4,000 more requests
# at c=4, and the difference over 4,000 is the per-request figure, so start-up (migrations,
# config) drops out. Everything the process does counts, the usage writer's SQLite work
# included. Run after `cargo build --release --bins`; needs valgrind and oha.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
command -v oha >/dev/null || cargo install oha --locked
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
MOCK_PORT=$(free_port)
target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
MOCK_PID=$!
trap 'kill $MOCK_PID 2>/dev/null; rm -rf "$WORK"' EXIT
BODY='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'

# instructions VARIANT REQUESTS -> the whole process's instruction count
instructions() {
  local variant=$1 requests=$2 port dir
  port=$(free_port); dir="$WORK/$variant-$requests"; mkdir -p "$dir"
  {
  echo "[server]"; echo "listen = \"127.0.0.1:$port\""; echo "data_dir = \"$dir\""
  echo "[auth]"; echo 'master_keys = ["bench-master-key-0001"]'
  echo "[[providers]]"; echo 'name = "mock"'; echo "base_url = \"http://127.0.0.1:$MOCK_PORT/v1\""
  echo "[[models]]"; echo 'name = "mock-gpt"'; echo 'targets = [{ provider = "mock" }]'
  echo '[pricing.models."mock-gpt"]'; echo 'input_per_mtok = 2.5'; echo 'output_per_mtok = 10.0'
  case $variant in none|limits) echo "[metering]"; echo "enabled = false";; esac
  case $variant in limits|both) printf '[limits]\n[limits.models."mock-gpt"]\nrequests_per_minute = 100000000\ntokens_per_minute = 100000000000\nmax_concurrent = 100000\ndaily_budget_usd = 1000000.0\n';; esac
  } > "$dir/gw.toml"
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$dir/out" \
    target/release/gateway --config "$dir/gw.toml" >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  oha --no-tui --output-format quiet -n "$requests" -c 4 -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer bench-master-key-0001" -d "$BODY" "http://127.0.0.1:$port/v1/chat/completions"
  kill -INT "$pid"; wait "$pid" || true
  awk '/^summary:/ {print $2}' "$dir/out"
}

echo "| variant | instructions per request | vs neither |"
echo "| --- | --- | --- |"
base=""
for variant in none metering limits both; do
  small=$(instructions "$variant" 1000)
  large=$(instructions "$variant" 5000)
  per=$(( (large - small) / 4000 ))
  base=${base:-$per}
  echo "| $variant | $per | $(( per - base )) |"
done

#!/usr/bin/env bash
# Flood benchmark (issue 13): a legitimate API key sends chat at a fixed rate, first alone, then
# while strangers flood the gateway with random API keys (/v1) and random sign-ups and logins
# (/api/v1/auth) at FLOOD_RPS in all. Prints the legitimate p50/p99 both ways, what the flood
# got back (by status) and the gateway's peak RSS, for BENCHMARKS.md.
#
#   bash benches/flood.sh                       # DURATION=20s LEGIT_RPS=200 FLOOD_RPS=2000
#   DURATION=10s bash benches/flood.sh
#   FLOODS=auth bash benches/flood.sh           # one half of the flood only (keys or auth)
#
# Needs oha (installed with cargo if missing) and wrk (Debian's package, installed if missing:
# its Lua scripts give each request its own random credential).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-20s}"
LEGIT_RPS="${LEGIT_RPS:-200}"
FLOOD_RPS="${FLOOD_RPS:-2000}"
FLOODS="${FLOODS:-keys auth}"
KEY="bench-master-key-0001"

command -v oha >/dev/null || cargo install oha --locked
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }; }
cargo build --release --bins --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOCK_PORT=$(free_port)
GW_PORT=$(free_port)
WORK=$(mktemp -d)
# The shipped defaults for everything the flood touches (throttles, hashing pool, credential
# checks), with sign-up open as the seeds' frontends need it.
cat > "$WORK/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
data_dir = "$WORK/data"
[auth]
master_keys = ["$KEY"]
allow_registration = true
[[providers]]
name = "mock"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
[[models]]
name = "mock-gpt"
targets = [{ provider = "mock" }]
[limits]
user_tier = "default"
[limits.tiers.default]
requests_per_minute = 100000
daily_budget_usd = 1000.0
TOML

RUST_LOG=warn target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
RUST_LOG=warn target/release/gateway --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
trap 'kill $MOCK_PID $GW_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$GW_PORT/health" >/dev/null && break
  sleep 0.1
done

API="http://127.0.0.1:$GW_PORT/api/v1"
ACCESS=$(curl -sf "$API/auth/register" -H 'content-type: application/json' \
  -d '{"email":"legit@example.com","password":"legit password 1"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
LEGIT_KEY=$(curl -sf "$API/keys" -H "authorization: Bearer $ACCESS" -H 'content-type: application/json' \
  -d '{"name":"legit"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

BODY='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
GATEWAY="http://127.0.0.1:$GW_PORT/v1/chat/completions"

legit() {
  oha --no-tui --output-format json -z "$DURATION" -q "$LEGIT_RPS" -c 16 -m POST \
    -H 'content-type: application/json' -H "authorization: Bearer $LEGIT_KEY" -d "$BODY" \
    "$GATEWAY" >"$WORK/$1.json"
}

# wrk paces each connection with delay(): CONNS connections at 1000/DELAY_MS requests a second
# each. Half the flood is random API keys, half random sign-ups and logins. wrk waits for each
# answer before the next request, and the gateway slows a guessing address down on purpose, so
# the sign-up/login half runs on AUTH_CONNS connections (many more) to keep offering load.
CONNS=20
AUTH_CONNS="${AUTH_CONNS:-400}"
DELAY_MS=$(( 2 * CONNS * 1000 / FLOOD_RPS ))
AUTH_DELAY_MS=$(( 2 * AUTH_CONNS * 1000 / FLOOD_RPS ))
cat > "$WORK/keys.lua" <<LUA
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function rand(n)
  local t = {}
  for i = 1, n do local k = math.random(#chars); t[i] = chars:sub(k, k) end
  return table.concat(t)
end
function init() math.randomseed(os.time() + math.random(1000000)) end
function delay() return $DELAY_MS end
function request()
  return wrk.format("POST", "/v1/chat/completions", {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer sk-" .. rand(43),
  }, '$BODY')
end
LUA
cat > "$WORK/auth.lua" <<LUA
local n = 0
function init() math.randomseed(os.time() + math.random(1000000)) end
function delay() return $AUTH_DELAY_MS end
function request()
  n = n + 1
  local who = "flood" .. math.random(100000000) .. "@example.com"
  local body = '{"email":"' .. who .. '","password":"guess ' .. math.random(100000000) .. '"}'
  local path = (n % 2 == 0) and "/api/v1/auth/register" or "/api/v1/auth/login"
  return wrk.format("POST", path, {["content-type"] = "application/json"}, body)
end
LUA

# wrk's summary per flood: requests sent, and how many got a non-2xx answer.
FLOOD_PIDS=()
flood() {
  for kind in $FLOODS; do
    conns=$CONNS
    [ "$kind" = auth ] && conns=$AUTH_CONNS
    wrk -t1 -c"$conns" -d"$DURATION" -s "$WORK/$kind.lua" "http://127.0.0.1:$GW_PORT" >"$WORK/flood-$kind.txt" 2>&1 &
    FLOOD_PIDS+=($!)
  done
}

# Warm-up, then the legitimate load alone, then beside the flood.
oha --no-tui --output-format quiet -z 2s -q "$LEGIT_RPS" -c 16 -m POST -H 'content-type: application/json' \
  -H "authorization: Bearer $LEGIT_KEY" -d "$BODY" "$GATEWAY" >/dev/null
legit alone
awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status" >"$WORK/rss-alone"
flood
legit flooded
wait "${FLOOD_PIDS[@]}"
if [ -n "${FLOOD_DEBUG:-}" ]; then
  grep -E 'Threads|VmRSS' "/proc/$GW_PID/status"
  awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6} /^Rss:/{if ($2 > 4096) print $2 " kB " name}' "/proc/$GW_PID/smaps" | sort -n | tail -15
fi

python3 - "$WORK" "$GW_PID" <<'PY'
import json, re, sys
work, pid = sys.argv[1], sys.argv[2]
def row(name):
    d = json.load(open(f"{work}/{name}.json"))
    p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    return d["summary"]["requestsPerSec"], p["p50"] * 1e3, p["p99"] * 1e3, codes
def wrk(name):
    text = open(f"{work}/flood-{name}.txt").read()
    total = re.search(r"(\d+) requests in", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return (int(total.group(1)) if total else 0, float(rate.group(1)) if rate else 0.0,
            int(non2xx.group(1)) if non2xx else 0)
status = open(f"/proc/{pid}/status").read()
hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
alone, flooded = row("alone"), row("flooded")
print("| legitimate chat | req/s | p50 ms | p99 ms | statuses |")
print("| --- | ---: | ---: | ---: | --- |")
for name, r in (("alone", alone), ("beside the flood", flooded)):
    print(f"| {name} | {r[0]:.0f} | {r[1]:.2f} | {r[2]:.2f} | {r[3]} |")
print(f"\np99 ratio flooded/alone: {flooded[2] / alone[2]:.2f}")
import os
for name, label in (("keys", "random API keys on /v1"), ("auth", "random sign-ups and logins")):
    if not os.path.exists(f"{work}/flood-{name}.txt"):
        continue
    total, rate, non2xx = wrk(name)
    print(f"flood, {label}: {total} requests, {rate:.0f}/s, {non2xx} refused (non-2xx)")
alone_rss = int(open(f"{work}/rss-alone").read()) / 1024
print(f"gateway RSS: {alone_rss:.1f} MB after the legitimate load alone, peak {hwm:.1f} MB, at the end {rss:.1f} MB")
PY

#!/usr/bin/env bash
# The app's chat path against /v1, and thread reads over 100,000 messages, on SQLite and (when
# BENCH_PG_URL names a database it may wipe) PostgreSQL. Prints Markdown rows for BENCHMARKS.md.
#
#   bash benches/chat.sh                                   # SQLite, DURATION=5s
#   BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/bench bash benches/chat.sh
#
# - send: seed 001's `POST /api/v1/chat` (a new thread, the user's message, a pending answer,
#   the model call through the pipeline, the answer saved; each request its own thread, so
#   concurrent sends never wait on one another) against `POST /v1/chat/completions` with the
#   same user's access token, at c=1 and c=16. Metering is on (a usage record per call).
# - reads: 1,000 threads of 100 messages each (100,000) written straight into the database for
#   the bench user, then seed 003's thread list (`GET /api/v1/threads/`, 20 with previews) and
#   one thread with its history (`GET /api/v1/threads/{id}`, 50 messages), at c=1 and c=16.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-5s}"
KEY="bench-master-key-0001"
command -v oha >/dev/null || cargo install oha --locked
cargo build --release --bins --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
MOCK_PORT=$(free_port)
RUST_LOG=warn target/release/mock-provider --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
GW_PID=
trap 'kill $MOCK_PID ${GW_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "| database | load | /v1 rps | app rps | /v1 p50 / p99 ms | app p50 / p99 ms | added p50 ms |"
echo "| --- | --- | --- | --- | --- | --- | --- |"

# oha_json NAME -> "rps p50ms p99ms ok total" from oha's JSON on stdin
summarise() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
codes = d.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
total = sum(codes.values()) + sum(d.get("errorDistribution", {}).values())
p = d["latencyPercentiles"]
print("%.0f %.3f %.3f %d %d" % (d["summary"]["requestsPerSec"], p["p50"] * 1e3, p["p99"] * 1e3, ok, total))'
}

bench_database() {
  local label=$1 url=$2 port dir
  port=$(free_port); dir="$WORK/$label"; mkdir -p "$dir"
  cat > "$dir/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$dir"
[auth]
master_keys = ["$KEY"]
access_token_ttl_secs = 86400
[database]
url = "$url"
[chat]
default_model = "mock-gpt"
[[providers]]
name = "mock"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
[[models]]
name = "mock-gpt"
targets = [{ provider = "mock" }]
[pricing.models."mock-gpt"]
input_per_mtok = 2.5
output_per_mtok = 10.0
TOML
  RUST_LOG=warn target/release/gateway --config "$dir/gateway.toml" >"$dir/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  local api="http://127.0.0.1:$port"
  local access
  access=$(curl -sf "$api/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password 1"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  local v1_body='{"model":"mock-gpt","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
  local app_body='{"message":"Say hello in one short sentence."}'
  # Warm both paths.
  oha --no-tui --output-format quiet -z 1s -c 4 -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer $access" -d "$v1_body" "$api/v1/chat/completions" >/dev/null
  oha --no-tui --output-format quiet -z 1s -c 4 -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer $access" -d "$app_body" "$api/api/v1/chat" >/dev/null
  for c in 1 16; do
    read -r v_rps v_p50 v_p99 v_ok v_total < <(oha --no-tui --output-format json -z "$DURATION" -w -c "$c" -m POST \
      -H 'content-type: application/json' -H "authorization: Bearer $access" -d "$v1_body" \
      "$api/v1/chat/completions" | summarise)
    read -r a_rps a_p50 a_p99 a_ok a_total < <(oha --no-tui --output-format json -z "$DURATION" -w -c "$c" -m POST \
      -H 'content-type: application/json' -H "authorization: Bearer $access" -d "$app_body" \
      "$api/api/v1/chat" | summarise)
    [ "$v_ok" = "$v_total" ] && [ "$a_ok" = "$a_total" ] || echo "  (errors: /v1 $v_ok/$v_total ok, app $a_ok/$a_total ok)"
    added=$(python3 -c "print('%.3f' % ($a_p50 - $v_p50))")
    echo "| $label | send c=$c | $v_rps | $a_rps | $v_p50 / $v_p99 | $a_p50 / $a_p99 | $added |"
  done

  # 100,000 messages: 1,000 threads of 100, written straight into the database.
  local user
  user=$(curl -sf "$api/api/v1/auth/me" -H "authorization: Bearer $access" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  python3 - "$user" > "$dir/seed.sql" <<'PY'
import sys
user = sys.argv[1]
print("BEGIN;")
seq = 10_000_000
for t in range(1000):
    tid = "bench-thread-%04d" % t
    print(f"INSERT INTO thread (id, user_id, title, model, seq, created_at, updated_at) VALUES "
          f"('{tid}', '{user}', 'Thread {t}', 'mock-gpt', {seq + t}, '2026-01-01T00:00:00.000+00:00', "
          f"'2026-01-0{1 + t % 9}T00:{t % 60:02d}:00.000+00:00');")
    rows = []
    for m in range(100):
        seq_m = 20_000_000 + t * 100 + m
        role = "user" if m % 2 == 0 else "assistant"
        rows.append(f"('bench-msg-{t:04d}-{m:03d}', '{tid}', '{user}', '{role}', "
                    f"'Message {m} of thread {t}: some words to read back, as a chat turn would have.', "
                    f"{seq_m}, '2026-01-01T01:{m // 60:02d}:{m % 60:02d}.000+00:00')")
    print("INSERT INTO message (id, thread_id, user_id, role, content, seq, created_at) VALUES " + ",".join(rows) + ";")
print("COMMIT;")
PY
  case $url in
    sqlite://*) sqlite3 "${url#sqlite://}" < "$dir/seed.sql" ;;
    postgres://*) psql -q "$url" < "$dir/seed.sql" >/dev/null ;;
  esac
  local thread="bench-thread-0500"
  for c in 1 16; do
    read -r l_rps l_p50 l_p99 _ _ < <(oha --no-tui --output-format json -z "$DURATION" -w -c "$c" \
      -H "authorization: Bearer $access" "$api/api/v1/threads/" | summarise)
    read -r d_rps d_p50 d_p99 _ _ < <(oha --no-tui --output-format json -z "$DURATION" -w -c "$c" \
      -H "authorization: Bearer $access" "$api/api/v1/threads/$thread" | summarise)
    echo "| $label | list c=$c (100k messages) | | $l_rps | | $l_p50 / $l_p99 | |"
    echo "| $label | thread+history c=$c (100k messages) | | $d_rps | | $d_p50 / $d_p99 | |"
  done
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
  GW_PID=
}

bench_database sqlite "sqlite://$WORK/sqlite/gateway.db"
if [ -n "${BENCH_PG_URL:-}" ]; then
  # A clean schema each run: the bench writes its own rows.
  psql -q "$BENCH_PG_URL" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
  bench_database postgres "$BENCH_PG_URL"
fi

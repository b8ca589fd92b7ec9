#!/usr/bin/env bash
# Fuzzing (issue 13): every parser that reads request or upstream bytes, under libFuzzer for a
# bounded time each. Prints one line per target (executions run, coverage, corpus) and fails on
# the first crash, whose input libFuzzer writes to fuzz/artifacts/TARGET/. Not part of CI.
#
#   bash benches/fuzz.sh                 # SECONDS_EACH=60
#   SECONDS_EACH=10 bash benches/fuzz.sh json_probe sse_decoder
#
# Builds with the stable toolchain (`-s none`: coverage guidance without a sanitizer, which
# would need a nightly std); installs cargo-fuzz with cargo if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${SECONDS_EACH:-60}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(json_probe sse_decoder multipart translate_request translate_response)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  cargo fuzz build -s none "$target" >/dev/null 2>&1 || cargo fuzz build -s none "$target"
  log=$(mktemp)
  if ! cargo fuzz run -s none "$target" -- -max_total_time="$SECONDS_EACH" -max_len=65536 \
      -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "FAILED: $target (input in fuzz/artifacts/$target/)"
    exit 1
  fi
  python3 - "$target" "$log" <<'PY'
import re, sys
target, text = sys.argv[1], open(sys.argv[2]).read()
def stat(name):
    m = re.search(rf"stat::{name}:\s+(\d+)", text)
    return int(m.group(1)) if m else 0
runs = stat("number_of_executed_units")
cov = re.findall(r"cov: (\d+)", text)
corp = re.findall(r"corp: (\d+)", text)
print(f"| {target} | {runs:,} | {stat('average_exec_per_sec'):,}/s | {cov[-1] if cov else '?'} | {corp[-1] if corp else '?'} | 0 |")
PY
  rm -f "$log"
done

#!/usr/bin/env bash
# Schema-based API testing: schemathesis (PyPI) generates requests from the
# gateway's own /openapi.json (the admin API and the /v1 proxy routes) and
# fails on any 5xx answer (check not_a_server_error).
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 25 per operation)
#
# Starts the real gateway binary in demo mode (built-in mock providers) with
# a master key and a temporary data directory, runs schemathesis against it
# and stops it. The report (JUnit, cassette of failures) goes to
# target/schemathesis/. See docs/TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${1:-25}"
venv=target/schemathesis-venv
mkdir -p target
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/schemathesis/requirements.txt
fi

echo "== building the gateway binary"
cargo build -p switchyard-server --bin switchyard -q
bin="$PWD/target/debug/switchyard"

data="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
master="sk-schemathesis-master-$(date +%s)"
log="target/schemathesis/gateway.log"
mkdir -p target/schemathesis
# A clean environment: no provider keys or config file, so the gateway runs
# the built-in demo providers.
(cd "$data" && exec env -i PATH="$PATH" HOME="$HOME" \
  SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_DATA_DIR="$data/data" \
  SWITCHYARD_MASTER_KEY="$master" SWITCHYARD_LOG=warn "$bin") >"$log" 2>&1 &
gw=$!
cleanup() { kill "$gw" 2>/dev/null || true; wait "$gw" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$gw" 2>/dev/null || { echo "gateway exited:"; cat "$log"; exit 1; }
  sleep 0.2
done

# The served document, with the proxy bodies' `model` narrowed to the
# configured aliases (tests/schemathesis/narrow_models.py).
spec=target/schemathesis/openapi.json
curl -fs "http://127.0.0.1:$port/openapi.json" >"$spec.served"
curl -fs -H "Authorization: Bearer $master" "http://127.0.0.1:$port/v1/models" >"$spec.models"
python3 tests/schemathesis/narrow_models.py "$spec.served" "$spec.models" "$spec"

echo "== schemathesis: $examples examples per operation, check not_a_server_error"
status=0
"$venv/bin/schemathesis" run "$spec" --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer $master" \
  --checks not_a_server_error \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$examples" --seed 18 --workers 2 \
  --request-timeout 20 --suppress-health-check all \
  --report junit --report-dir target/schemathesis \
  --output-truncate true || status=$?

if ! kill -0 "$gw" 2>/dev/null; then
  echo "the gateway died during the run:"; tail -n 50 "$log"; status=1
fi
if grep -q "panicked" "$log"; then
  echo "the gateway logged a panic:"; grep -A5 "panicked" "$log" | head -n 30; status=1
fi
exit $status

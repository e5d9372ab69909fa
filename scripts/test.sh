#!/usr/bin/env bash
# Run the whole test suite: Rust unit + integration tests (real sockets,
# built-in mock providers), then the official-SDK suites (Python openai and
# anthropic, Node openai) against a real gateway process.
#
#   ./scripts/test.sh            everything
#   SKIP_SDK=1 ./scripts/test.sh Rust tests only
#
# The SDK suites need python3 and node; missing SDK packages are installed
# into .venv/ and tests/sdk/node_modules/ on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace)"
mkdir -p target   # a fresh clone has no target/ until cargo makes one; tee needs it now
cargo test --workspace --all-targets 2>&1 | tee target/cargo-test.log | grep -E "^(test result|running|error|failures|---- )|panicked|FAILED" || true
if grep -qE "^test result: FAILED|error(\[E[0-9]+\])?:|could not compile" target/cargo-test.log; then
  echo "Rust tests FAILED (full log: target/cargo-test.log)"; exit 1
fi
rust_passed=$(grep -E "^test result" target/cargo-test.log | awk '{s+=$4} END {print s+0}')
rust_failed=$(grep -E "^test result" target/cargo-test.log | awk '{s+=$6} END {print s+0}')
echo "Rust: ${rust_passed} passed, ${rust_failed} failed"

if [ "${SKIP_SDK:-0}" = "1" ]; then
  echo "SDK suites skipped (SKIP_SDK=1)"; exit 0
fi

echo "== building the gateway binary for the SDK suites"
cargo build -p switchyard-server --bin switchyard -q
export SWITCHYARD_BIN="$PWD/target/debug/switchyard"

echo "== Python SDK suite (openai, anthropic)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/python -c "import openai, anthropic, pytest" 2>/dev/null; then
  .venv/bin/pip install -q -r tests/sdk/requirements.txt
fi
.venv/bin/python -m pytest -q tests/sdk

echo "== Node SDK suite (openai)"
if command -v node >/dev/null 2>&1; then
  if [ ! -d tests/sdk/node_modules/openai ]; then (cd tests/sdk && npm install --silent --no-audit --no-fund); fi
  node --test tests/sdk/
else
  if [ "${CI:-}" = "true" ]; then echo "node is required in CI"; exit 1; fi
  echo "SKIPPED: Node SDK suite (node not installed)"
fi

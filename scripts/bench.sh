#!/usr/bin/env bash
# Switchyard benchmark harness (issue 5; failover figures for issue 3).
#
#   scripts/bench.sh all [--peers] [--duration N]   every scenario + gate + profile → bench/report.{md,json}
#   scripts/bench.sh gate [--update]                 callgrind instruction-count gate (CI)
#   scripts/bench.sh main|postgres|stream|ladder|failover|peers [--duration N]
#                                                    one group → target/bench/<group>/report.{md,json}
#   scripts/bench.sh soak [--soak-secs 600]          RSS curve at 500 req/s → target/bench/soak/
#
# Installs what it needs when missing: wrk and nginx (apt), oha (cargo install), valgrind
# and perf (apt), and with --peers LiteLLM proxy (pip, in a venv) and the
# Portkey gateway (npm), all under target/bench-tools/. Only loopback traffic;
# every load run is bounded in time. A PostgreSQL server at $BENCH_PG (default
# postgres://postgres@127.0.0.1:5432; empty: skip) gets a scratch database for
# the run with the usage rows there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/target/bench-tools"
WORK="$ROOT/target/bench-work"
mkdir -p "$TOOLS" "$WORK"
export CARGO_TERM_COLOR=never

cmd="${1:-all}"
[ $# -gt 0 ] && shift
peers=0
update=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --peers) peers=1 ;;
    --update) update=1 ;;
    *) extra+=("$1") ;;
  esac
  shift
done
notes=()

apt_install() {
  echo "== apt-get install $*"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
}

need_valgrind() { command -v valgrind >/dev/null || apt_install valgrind; }

need_load_tools() {
  command -v wrk >/dev/null || apt_install wrk
  if command -v oha >/dev/null; then OHA=$(command -v oha)
  elif [ -x "$HOME/.cargo/bin/oha" ]; then OHA="$HOME/.cargo/bin/oha"
  elif [ -x "$TOOLS/bin/oha" ]; then OHA="$TOOLS/bin/oha"
  else
    echo "== cargo install oha --locked (a few minutes, once)"
    cargo install oha --locked --root "$TOOLS" -q
    OHA="$TOOLS/bin/oha"
  fi
  # nginx: the neutral upstream of the saturation run issue 5's peers used.
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    apt_install nginx-light || notes+=("nginx not installable: no neutral-upstream saturation run")
  fi
  NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
  if ! command -v perf >/dev/null; then
    apt_install linux-perf || notes+=("perf not installable: no profile")
  fi
  # PostgreSQL for the saturation run with the usage rows there: the
  # server at BENCH_PG (default: the local one, user postgres), used only
  # when psql reaches it. Not installed or started here.
  PG="${BENCH_PG-postgres://postgres@127.0.0.1:5432}"
  if [ -n "$PG" ] && ! { command -v psql >/dev/null && psql "$PG/postgres" -X -q -t -c 'SELECT 1' >/dev/null 2>&1; }; then
    PG=""
  fi
}

build() {
  echo "== cargo build --release -p switchyard-bench -p switchyard-server"
  cargo build --release -q -p switchyard-bench -p switchyard-server
}

load_check() {
  # How busy the machine is right now: CPU time not idle over 2 s, from
  # /proc/stat. (The 1-minute load average would still count the gate's
  # own valgrind runs a minute after they ended.)
  local a b busy
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  sleep 2
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  busy=$(echo "$a $b" | awk '{u=$3-$1; i=$4-$2; t=u+i; if (t <= 0) t=1; printf "%.0f", 100*u/t}')
  echo "== CPU busy before the run: ${busy}%"
  if [ "$busy" -gt 20 ]; then
    echo "   warning: the machine is busy (${busy}% of its CPU time in the last 2 s): figures will be noisy"
    notes+=("the machine's CPUs were ${busy}% busy in the 2 s before the $1 started: other work was running; figures are noisier than usual")
  fi
}

GATE_N=2000
# The driver kind of the governed gate (crates/bench/src/driver.rs).
GATE_GOVERNED=7
gate() {
  local t0 t1
  t0=$(date +%s)
  need_valgrind
  echo "== cargo build --release -p switchyard-bench"
  cargo build --release -q -p switchyard-bench
  rm -f "$WORK"/cg.run* "$WORK"/cg.gov*
  for r in 1 2; do
    echo "== valgrind --tool=callgrind switchyard-bench driver --requests $GATE_N (run $r)"
    valgrind --tool=callgrind --dump-before='*phase_mark*' \
      --callgrind-out-file="$WORK/cg.run$r" \
      target/release/switchyard-bench driver --requests "$GATE_N" --warmup 40 \
      >"$WORK/driver$r.json" 2>"$WORK/valgrind$r.log"
  done
  # The governed path (virtual key, plan limits, usage rows into SQLite):
  # its own baseline, since it is one kind rather than the mix. Its usage
  # writer flushes by time, so its runs differ by about 1% (the tolerance
  # is 10%).
  for r in 1 2; do
    echo "== valgrind --tool=callgrind switchyard-bench driver --requests $GATE_N --kind $GATE_GOVERNED (run $r)"
    valgrind --tool=callgrind --dump-before='*phase_mark*' \
      --callgrind-out-file="$WORK/cg.gov$r" \
      target/release/switchyard-bench driver --requests "$GATE_N" --warmup 40 --kind "$GATE_GOVERNED" \
      >"$WORK/driver-gov$r.json" 2>"$WORK/valgrind-gov$r.log"
  done
  t1=$(date +%s)
  local rc=0 which base json runs kind
  for which in mix governed; do
    base="bench/callgrind-baseline.json"
    runs=(--out "$WORK/cg.run1" --out "$WORK/cg.run2")
    json="$WORK/gate.json"
    kind=()
    if [ "$which" = governed ]; then
      base="bench/callgrind-baseline-governed.json"
      runs=(--out "$WORK/cg.gov1" --out "$WORK/cg.gov2")
      json="$WORK/gate-governed.json"
      kind=(--kind "$GATE_GOVERNED")
    fi
    echo "== gate: $which"
    if [ "$update" = 1 ]; then
      target/release/switchyard-bench gate "${runs[@]}" "${kind[@]+"${kind[@]}"}" \
        --requests "$GATE_N" --baseline "$base" --update
    fi
    target/release/switchyard-bench gate "${runs[@]}" "${kind[@]+"${kind[@]}"}" \
      --requests "$GATE_N" --baseline "$base" --json "$json" || rc=1
    python3 - "$json" "$((t1 - t0))" <<'EOF' || true
import json, sys
p, s = sys.argv[1], float(sys.argv[2])
d = json.load(open(p)); d["gate_seconds"] = s
json.dump(d, open(p, "w"), indent=2)
EOF
  done
  # Hot spots of the gateway phase (own instructions), for the report.
  if command -v callgrind_annotate >/dev/null; then
    callgrind_annotate --threshold=100 --auto=no "$WORK/cg.run1.3" 2>/dev/null |
      sed -n '/file:function/,$p' | grep -v -E 'libc-start|libc_start_call_main|below main|0x0000|lang_start|__rust_begin_short_backtrace|Runtime::block_on|switchyard_bench::main' |
      sed -E 's|/root/.cargo/registry/src/index.crates.io-[0-9a-f]+/||; s|/rustc/[0-9a-f]+/||; s| \[/[^]]*\]||g' |
      sed -n '3,32p' | cut -c1-170 >"$WORK/callgrind-top.txt" || true
  fi
  echo "== gate took $((t1 - t0)) s (build + four valgrind runs)"
  return $rc
}

peer_setup() {
  LITELLM=""
  PORTKEY=""
  local venv="$TOOLS/litellm-venv"
  if [ ! -x "$venv/bin/litellm" ]; then
    echo "== pip install 'litellm[proxy]' into $venv"
    if python3 -m venv "$venv" >/dev/null 2>&1 &&
       "$venv/bin/pip" install -q 'litellm[proxy]' >"$WORK/litellm-install.log" 2>&1; then :
    else
      notes+=("LiteLLM proxy: installation failed here (see target/bench-work/litellm-install.log): $(tail -n1 "$WORK/litellm-install.log" 2>/dev/null | cut -c1-200)")
    fi
  fi
  if [ -x "$venv/bin/litellm" ]; then
    LITELLM="$venv/bin/litellm"
    notes+=("LiteLLM proxy $("$venv/bin/pip" show litellm 2>/dev/null | awk '/^Version/{print $2}') (pip, venv under target/bench-tools), 1 worker (--num_workers 1), master key set, default settings")
  fi
  local pk="$TOOLS/portkey"
  if [ ! -d "$pk/node_modules/@portkey-ai/gateway" ]; then
    echo "== npm install @portkey-ai/gateway into $pk"
    mkdir -p "$pk"
    if (cd "$pk" && npm install --no-audit --no-fund @portkey-ai/gateway >"$WORK/portkey-install.log" 2>&1); then :
    else
      notes+=("Portkey gateway: installation failed here (see target/bench-work/portkey-install.log): $(tail -n1 "$WORK/portkey-install.log" 2>/dev/null | cut -c1-200)")
    fi
  fi
  # The package's own start command (what `npx @portkey-ai/gateway` runs), without its web UI.
  if [ -x "$pk/node_modules/.bin/gateway" ]; then
    PORTKEY="$pk/node_modules/.bin/gateway --headless"
    notes+=("Portkey gateway $(node -p 'require(process.argv[1]).version' "$pk/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null) (npm), node $(node --version), headers x-portkey-provider: openai + x-portkey-custom-host pointing at the bench upstream")
  fi
}

run_groups() {
  local groups="$1" out="$2"
  shift 2
  local args=(run --only "$groups" --oha "$OHA" --wrk wrk --nginx "${NGINX:-}" --postgres "${PG:-}" --out-dir "$out" --work-dir "$WORK")
  if [ "$peers" = 1 ]; then
    peer_setup
    args+=(--peers --litellm "$LITELLM" --portkey "$PORTKEY")
  fi
  command -v perf >/dev/null && args+=(--perf)
  local n
  for n in "${notes[@]+"${notes[@]}"}"; do args+=(--note "$n"); done
  echo "== switchyard-bench ${args[*]} ${extra[*]+"${extra[*]}"}"
  target/release/switchyard-bench "${args[@]}" "${extra[@]+"${extra[@]}"}"
}

case "$cmd" in
  gate)
    gate
    ;;
  all)
    need_load_tools
    build
    load_check "instruction-count gate"
    gate_rc=0
    gate || gate_rc=$?
    cp "$WORK/gate.json" bench/gate.json 2>/dev/null || true
    cp "$WORK/gate-governed.json" bench/gate-governed.json 2>/dev/null || true
    cp "$WORK/callgrind-top.txt" bench/callgrind-top.txt 2>/dev/null || true
    [ "$gate_rc" = 0 ] || notes+=("the instruction-count gate FAILED in this run")
    load_check "load runs"
    run_groups all bench
    ;;
  main|postgres|stream|ladder|failover|peers|soak)
    need_load_tools
    build
    load_check "load runs"
    [ "$cmd" = peers ] && peers=1
    run_groups "$cmd" "target/bench/$cmd"
    ;;
  *)
    echo "usage: scripts/bench.sh all|gate|main|postgres|stream|ladder|failover|peers|soak [--peers] [--update] [--duration N]" >&2
    exit 2
    ;;
esac

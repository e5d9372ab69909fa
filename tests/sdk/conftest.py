"""Shared fixtures for the official-SDK conformance suites.

One gateway process per test session: the `switchyard` binary
(`$SWITCHYARD_BIN`, default `target/debug/switchyard`) started in DEMO mode
with a clean environment (only PATH and HOME), in a temporary working
directory (so no `switchyard.yaml` is picked up), on port 0. The address is
read from the start-up banner; the process is killed at the end.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_KEY = "sk-switchyard-demo"
# The three provider-backed aliases every cross-provider test runs through,
# and the label each mock puts in its canned replies.
ALIASES = ["demo-openai", "demo-anthropic", "demo-gemini"]
BANNER_RE = re.compile(r"listening on (http://\S+)")


def _binary() -> str:
    path = os.environ.get("SWITCHYARD_BIN") or str(REPO / "target" / "debug" / "switchyard")
    if not os.path.isabs(path):
        path = str(REPO / path)
    if not os.access(path, os.X_OK):
        pytest.exit(
            f"gateway binary not found at {path}; run "
            "`cargo build -p switchyard-server --bin switchyard` or set SWITCHYARD_BIN",
            returncode=2,
        )
    return path


@pytest.fixture(scope="session")
def gateway_url():
    """Base URL (`http://127.0.0.1:PORT`) of a demo-mode gateway process."""
    cwd = tempfile.mkdtemp(prefix="switchyard-sdk-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", cwd)}
    proc = subprocess.Popen(
        [_binary(), "--listen", "127.0.0.1:0"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()
    seen: list[str] = []
    stderr_tail: list[str] = []

    def pump_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_stderr() -> None:
        # Drain stderr so the process never blocks on a full pipe.
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_tail.append(line)
            del stderr_tail[:-50]

    threading.Thread(target=pump_stdout, daemon=True).start()
    threading.Thread(target=pump_stderr, daemon=True).start()

    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        m = BANNER_RE.search(line)
        if m:
            url = m.group(1).rstrip("/")
    if url is None:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(cwd, ignore_errors=True)
        pytest.exit(
            "gateway did not print its listening address; stdout:\n"
            + "".join(seen)
            + "\nstderr:\n"
            + "".join(stderr_tail),
            returncode=2,
        )
    try:
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(cwd, ignore_errors=True)


@pytest.fixture(scope="session")
def openai_client(gateway_url):
    import openai

    return openai.OpenAI(base_url=gateway_url + "/v1", api_key=DEMO_KEY, max_retries=0, timeout=20)


@pytest.fixture(scope="session")
def anthropic_client(gateway_url):
    import anthropic

    return anthropic.Anthropic(base_url=gateway_url, api_key=DEMO_KEY, max_retries=0, timeout=20)


@pytest.fixture(params=ALIASES)
def alias(request) -> str:
    """Each provider-backed demo alias in turn."""
    return request.param

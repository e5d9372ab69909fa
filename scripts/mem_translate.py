#!/usr/bin/env python3
"""Memory per in-flight translated request (issue 18 §4).

Starts `switchyard mock` (Anthropic) and the gateway in front of it, sends
N OpenAI-format requests of SIZE bytes (an image as a data URL plus text),
CONC at a time, through the translating path (OpenAI in, Anthropic out),
and reports the gateway's resident memory before, at its peak (VmHWM) and
after, and the peak growth per in-flight request as a multiple of the body.

usage: scripts/mem_translate.py [BINARY] [--size BYTES] [--n N] [--conc C]
       [--workers W] [--text | --many] [--to anthropic|gemini]
"""
import base64, json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request

args = sys.argv[1:]
binary = args[0] if args and not args[0].startswith("--") else "target/debug/switchyard"
def opt(name, default):
    return int(args[args.index(name) + 1]) if name in args else default
SIZE, N, CONC = opt("--size", 881 * 1024), opt("--n", 40), opt("--conc", 20)
WORKERS = opt("--workers", 1)
TEXT = "--text" in args
MANY = "--many" in args  # many small messages instead of one big part
TO = args[args.index("--to") + 1] if "--to" in args else "anthropic"
KIND = {"anthropic": "anthropic", "gemini": "gemini"}[TO]
PATH = {"anthropic": "", "gemini": "/v1beta"}[TO]
MODEL = {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}[TO]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0

mock_port, gw_port = free_port(), free_port()
mock = subprocess.Popen([binary, "mock", "--flavor", TO, "--port", str(mock_port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
cfg.write(f"""
server:
  listen: "127.0.0.1:{gw_port}"
  api_keys: ["${{GW}}"]
  workers: {WORKERS}
governance: {{ enabled: false }}
providers:
  ant: {{ kind: {KIND}, base_url: "http://127.0.0.1:{mock_port}{PATH}", api_key: "${{ANT}}" }}
models:
  claude: {{ deployments: [{{ provider: ant, model: {MODEL} }}] }}
""")
cfg.close()
env = dict(os.environ, GW="sk-mem", ANT="k", SWITCHYARD_LOG="warn")
gw = subprocess.Popen([binary, "--config", cfg.name], env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    base = f"http://127.0.0.1:{gw_port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/health", timeout=1); break
        except Exception:
            time.sleep(0.05)
    # An image of about SIZE bytes once base64-encoded, and some text.
    img = base64.b64encode(os.urandom(SIZE * 3 // 4 - 2000)).decode()
    if MANY:
        msgs, size = [], 0
        while size < SIZE - 200:
            m = {"role": "user" if len(msgs) % 2 == 0 else "assistant", "content": "lorem ipsum dolor sit amet %d" % len(msgs)}
            msgs.append(m); size += len(json.dumps(m)) + 1
        body = json.dumps({"model": "claude", "max_tokens": 16, "messages": msgs + [{"role": "user", "content": "end"}]}).encode()
    elif TEXT:
        words = ("lorem ipsum dolor sit amet " * (SIZE // 27 + 1))[:SIZE - 200]
        body = json.dumps({"model": "claude", "max_tokens": 16, "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": words}]}).encode()
    else:
      body = json.dumps({"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe " * 100},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + img}}]}]}).encode()
    def one():
        req = urllib.request.Request(base + "/v1/chat/completions", data=body, method="POST",
            headers={"authorization": "Bearer sk-mem", "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200, r.status
            r.read()
    one()  # warm: pools, lazy statics
    time.sleep(0.5)
    before = status(gw.pid, "VmRSS")
    # VmHWM is the process's peak so far: reset it where the kernel allows.
    try:
        open(f"/proc/{gw.pid}/clear_refs", "w").write("5")
    except OSError:
        pass
    hwm0 = status(gw.pid, "VmHWM")
    peak = [before]
    stop = False
    def sample():
        while not stop:
            peak[0] = max(peak[0], status(gw.pid, "VmRSS")); time.sleep(0.002)
    t = threading.Thread(target=sample); t.start()
    errors = []
    def worker(k):
        for _ in range(k):
            try: one()
            except Exception as e: errors.append(e)
    per = [N // CONC + (1 if i < N % CONC else 0) for i in range(CONC)]
    ts = [threading.Thread(target=worker, args=(k,)) for k in per]
    [x.start() for x in ts]; [x.join() for x in ts]
    stop = True; t.join()
    time.sleep(0.5)
    after = status(gw.pid, "VmRSS")
    hwm = status(gw.pid, "VmHWM")
    top = max(peak[0], hwm if hwm != hwm0 or hwm > before else peak[0])
    growth = top - before
    print(f"body {len(body)/1024:.0f} KiB, {N} requests, {CONC} concurrent, errors {len(errors)}")
    print(f"RSS before {before/2**20:.1f} MiB, peak {top/2**20:.1f} MiB, after {after/2**20:.1f} MiB")
    print(f"peak growth {growth/2**20:.1f} MiB = {growth/CONC/len(body):.2f}x body per in-flight request")
finally:
    gw.terminate(); mock.terminate(); gw.wait(); mock.wait(); os.unlink(cfg.name)

"""Section 8: key-value latency from a guest (issue 15's benchmark).

One `wisp up` with two key-value stores granted to the `kv-probe` guest:
`embedded` (the default backend: SQLite in the state directory, WAL,
`synchronous = FULL`, a write acknowledged only after its group commits)
and `redis` (a `redis-server` this section starts on a free loopback port,
persistence off: `--save "" --appendonly no`, as a cache is usually run).

The guest times every call itself (`std::time::Instant` around each
`wisp_sdk::kv` call, so the figure is the host call as the guest sees it:
the wasi:keyvalue binding, the backend and, for `set`, durability) and
answers one nanosecond figure per call. The bench asks for `CALLS` calls per
request, one request at a time, over a fresh instance each (the default
isolation): `set` on distinct keys, then `get` of those keys, then `incr`
of one counter. p50/p99 are over all calls of all runs.
"""

import json
import shutil
import subprocess
import time
from http.client import HTTPConnection

from events import fmt, med, tail
from sections import Server, free_port

GUEST = "kv-probe"
BACKENDS = ["embedded", "redis"]
OPS = ["set", "get", "incr"]
CALLS = 100                 # timed calls per request


def requests_per_op(ctx):
    return 3 if ctx.quick else 20


def manifest(ctx, port, state, redis_port):
    text = f"""[server]
listen = "127.0.0.1:{port}"
state_dir = {json.dumps(str(state))}
shutdown_grace = "1s"

[[store]]
name = "embedded"
kind = "keyvalue"

[[store]]
name = "redis"
kind = "keyvalue"
backend = {{ redis = "redis://127.0.0.1:{redis_port}/0" }}

[[function]]
name = "{GUEST}"
component = {json.dumps(str(ctx.tools['guests'] / f'{GUEST}.wasm'))}
route = "/kv"
keyvalue = {json.dumps(BACKENDS)}
"""
    path = ctx.scratch / f"keyvalue-{port}.toml"
    path.write_text(text)
    return path


class Redis:
    """A `redis-server` on a free loopback port, no persistence."""

    def __init__(self, ctx):
        self.ctx, self.port, self.proc = ctx, free_port(), None

    def __enter__(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is missing (Debian: apt-get install redis-server; scripts/test "
                               "installs it)")
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.connect()
                conn.close()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.__exit__()
                    raise RuntimeError("redis-server did not start listening within 10 s")
                time.sleep(0.01)

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def timed_calls(server, store, op, prefix):
    """The guest's per-call nanoseconds for one request of CALLS calls."""
    conn = HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("GET", f"/kv/bench?store={store}&op={op}&n={CALLS}&prefix={prefix}")
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"kv-probe bench {store}/{op}: {resp.status} {body.strip()}\n"
                           f"server log:\n{tail(server.log_path)}")
    return [int(line) for line in body.split()]


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def keyvalue(ctx):
    """{backend: {op: {"p50_us", "p99_us", "calls", "runs_p50_us"}}}."""
    wasm = ctx.tools["guests"] / f"{GUEST}.wasm"
    if not wasm.exists():
        raise RuntimeError(f"{wasm} is missing; run scripts/build-guests")
    samples = {b: {op: [] for op in OPS} for b in BACKENDS}
    runs_p50 = {b: {op: [] for op in OPS} for b in BACKENDS}
    for run in range(ctx.runs):
        with Redis(ctx) as redis:
            port, state = free_port(), ctx.scratch / f"keyvalue-state-{run}"
            argv = [ctx.tools["wisp"], "up", "-f", manifest(ctx, port, state, redis.port)]
            with Server(ctx=ctx, name="keyvalue", argv=argv, port=port, probe=None) as server:
                server.start()
                # Compiled code faulted in, the store's tables created.
                for backend in BACKENDS:
                    timed_calls(server, backend, "set", f"warm{run}")
                for backend in BACKENDS:
                    for op in OPS:
                        calls = []
                        for i in range(requests_per_op(ctx)):
                            calls += timed_calls(server, backend, op, f"r{run}-{i}")
                        samples[backend][op] += calls
                        runs_p50[backend][op].append(percentile(calls, 0.5) / 1000)
                        ctx.log(f"8 key-value: run {run + 1}/{ctx.runs} {backend} {op}: {len(calls)} calls, "
                                f"p50 {percentile(calls, 0.5) / 1000:.1f} µs, "
                                f"p99 {percentile(calls, 0.99) / 1000:.1f} µs")
            shutil.rmtree(state, ignore_errors=True)
    return {b: {op: {"calls": len(v), "p50_us": percentile(v, 0.5) / 1000, "p99_us": percentile(v, 0.99) / 1000,
                     "runs_p50_us": runs_p50[b][op]}
                for op, v in ops.items()}
            for b, ops in samples.items()}


# --- summarising for report.py ----------------------------------------------------

def rows(res):
    """Rows of report.py's main table: one per backend."""
    if not res:
        return []
    out = []
    for backend, ops in res.items():
        figures = "; ".join(f"{op} p50 {fmt(f['p50_us'], ' µs', 1)}, p99 {fmt(f['p99_us'], ' µs', 1)}"
                            for op, f in ops.items())
        calls = med(f["calls"] for f in ops.values())
        out.append(("8 key-value", f"{GUEST} timing each wasi:keyvalue call inside the guest, {backend} store "
                    f"({fmt(calls, digits=0)} calls per op)", figures, "reported"))
    return out


def table(res):
    """Section 8's own table."""
    if not res:
        return ""
    out = [f"## 8. Key-value latency from a guest (`{GUEST}`)", "",
           "| backend | op | p50 | p99 | calls | p50 of each run |", "|---|---|---|---|---|---|"]
    for backend, ops in res.items():
        for op, f in ops.items():
            out.append(f"| {backend} | {op} | {fmt(f['p50_us'], ' µs', 1)} | {fmt(f['p99_us'], ' µs', 1)} "
                       f"| {f['calls']:,} | {', '.join(fmt(x, ' µs', 1) for x in f['runs_p50_us'])} |")
    out += ["", "Each call timed by the guest (`Instant` around the `wisp_sdk::kv` call), one request of "
                f"{CALLS} calls at a time. embedded = SQLite in the state directory, a `set` acknowledged after "
                "its commit (`synchronous = FULL`, so an fsync when writes come one at a time); redis = a local "
                "`redis-server` with persistence off."]
    return "\n".join(out)

"""The benchmark sections, each returning raw numbers for report.py.

Everything listens on 127.0.0.1 only, and every wait is bounded: a server
that does not come up, or a load that never arrives, fails the section with
the tail of the server's log instead of hanging.
"""

import asyncio
import collections
import dataclasses
import json
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection  # `http` is section 2's function
from pathlib import Path
from typing import Callable


@dataclass
class Context:
    tools: dict
    env: dict
    scratch: Path
    quick: bool
    runs: int
    log: Callable[[str], None]
    # With `benches/run --compare BASE`: the base commit's label; its
    # binary is tools["wisp-base"].
    base: str | None = None


def base_name(base, name):
    """The name of a Wisp variant's twin run by the base commit's binary."""
    return name.replace("Wisp", f"Wisp@{base}", 1)


def with_base(ctx, variants):
    """With a base commit, each Wisp variant twice: as given, then the same
    argv built with the base commit's `wisp` (variants are (name,
    argv(ctx, ...)) pairs). Twins take turns with the others in the same
    runs, so both commits see the same noise."""
    if not ctx.base:
        return variants
    base_ctx = dataclasses.replace(ctx, tools={**ctx.tools, "wisp": ctx.tools["wisp-base"]})
    out = []
    for name, argv in variants:
        out.append((name, argv))
        if name.startswith("Wisp"):
            out.append((base_name(ctx.base, name), lambda _ctx, *a, argv=argv: argv(base_ctx, *a)))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path="/", timeout=2.0):
    """One HTTP/1.1 GET over a fresh connection; returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


def wait_200(port, proc, log_path, timeout=300.0, path="/"):
    """Polls until the server answers 200 on `path`; returns the
    perf_counter of that answer. The loop only sleeps 0.2 ms between refused
    connects, so it resolves a start-up to well under a millisecond without
    taking a whole core away from the server it is waiting for. With `path`
    None, an accepted connection is enough: for guests that must not be
    called just to see whether the server is up (one that never returns)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log_path)}")
        try:
            if path is None:
                socket.create_connection(("127.0.0.1", port), timeout=2.0).close()
                return time.perf_counter()
            status, _ = get(port, path)
            if status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.0002)
    raise RuntimeError(f"no {'connection' if path is None else '200'} within {timeout:.0f}s:\n{tail(log_path)}")


def tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """A server process on a known port, its stderr kept in a log file.
    `probe` is the path polled for a 200 at start (None: an accepted
    connection is enough)."""

    def __init__(self, ctx, name, argv, port, probe="/"):
        self.name, self.argv, self.port, self.ctx = name, [str(a) for a in argv], port, ctx
        self.probe = probe
        self.log_path = ctx.scratch / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}-{port}.log"
        self.proc = None

    def start(self, timeout=300.0):
        """Starts the process; returns seconds from spawn to first 200."""
        log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, env=self.ctx.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        try:
            return wait_200(self.port, self.proc, self.log_path, timeout, self.probe) - t0
        except BaseException:
            self.stop()
            raise

    def stop(self, grace=10.0):
        if self.proc and self.proc.poll() is None:
            # SIGINT is the graceful stop both wisp and wasmtime serve handle.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class PerfStat:
    """`perf stat -e EVENTS -p PID` while in the `with` block. After it,
    `counts` is {event: value} (task-clock in ms), or None with `error`
    saying why (no perf, perf failed, an event not counted)."""

    def __init__(self, ctx, pid, events):
        self.ctx, self.pid, self.events = ctx, pid, list(events)
        self.proc, self.counts, self.error = None, None, None
        self.out = ctx.scratch / f"perf-{pid}-{time.monotonic_ns()}.csv"

    def __enter__(self):
        perf = shutil.which("perf")
        if not perf:
            self.error = "perf not found"
            return self
        self.proc = subprocess.Popen([perf, "stat", "-x", ",", "-o", str(self.out),
                                      "-e", ",".join(self.events), "-p", str(self.pid)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        time.sleep(0.3)  # attach before the load starts
        if self.proc.poll() is not None:
            self.error = f"perf stat exited: {self.proc.stderr.read().decode(errors='replace')[-300:]}"
            self.proc = None
        return self

    def __exit__(self, *exc):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        counts = {}
        try:
            for line in self.out.read_text().splitlines():
                fields = line.split(",")
                # value,unit,event,...; "<not counted>" or "<not supported>" otherwise.
                if len(fields) > 2 and fields[2] in self.events:
                    try:
                        counts[fields[2]] = float(fields[0])
                    except ValueError:
                        pass
        except OSError as e:
            self.error = str(e)
        if len(counts) == len(self.events):
            self.counts = counts
        elif not self.error:
            self.error = f"perf stat gave no counts: {self.out.read_text()[-300:]}"


def wisp_serve(ctx, port, guest="hello", *extra):
    return [ctx.tools["wisp"], "serve", ctx.tools["guests"] / f"{guest}.wasm",
            "--listen", f"127.0.0.1:{port}", *extra]


def wasmtime_serve(ctx, port, guest="hello", *extra):
    # -Scli: Rust std guests import wasi:cli (environment, exit, stdio)
    # beyond the proxy world; Wisp links all of WASI the same way.
    return [ctx.tools["wasmtime"], "serve", "-Scli", *extra, "--addr", f"127.0.0.1:{port}",
            ctx.tools["guests"] / f"{guest}.wasm"]


# --- 1. in-process ---------------------------------------------------------------

def inprocess(ctx):
    """Runs the inprocess binary `runs` times; each run measures every mode."""
    rows, derived = [], []
    argv = [str(ctx.tools["inprocess"]), "--guest-dir", str(ctx.tools["guests"])]
    if ctx.quick:
        argv += ["--iterations", "300", "--warmup", "30", "--budget-secs", "3"]
    for run in range(ctx.runs):
        ctx.log(f"1 in-process: run {run + 1}/{ctx.runs}")
        out = subprocess.run(argv, env=ctx.env, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"inprocess failed:\n{out.stderr[-3000:]}")
        for line in out.stdout.splitlines():
            rec = json.loads(line)
            (rows if rec["kind"] == "inprocess" else derived).append(rec)
    return rows, derived


# --- 2. HTTP -----------------------------------------------------------------------

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(out):
    """req/s, p50, p99 (ms), error count and requests done from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+[a-z]+)", out, re.M))
    if not rps or "50" not in lat or "99" not in lat:
        raise RuntimeError(f"could not parse wrk output:\n{out}")

    def ms(v):
        num, unit = re.fullmatch(r"([\d.]+)([a-z]+)", v).groups()
        return float(num) * UNITS_MS[unit]

    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(n) for n in m.groups())
    done = re.search(r"(\d+) requests in", out)
    return {"rps": float(rps.group(1)), "p50_ms": ms(lat["50"]), "p99_ms": ms(lat["99"]), "errors": errors,
            "requests": int(done.group(1)) if done else None}


def wrk(ctx, port, seconds, threads=2, connections=16, path="/", timeout=None):
    """`timeout`: wrk's per-request timeout (its default is 2s), e.g. "10s"."""
    argv = [str(ctx.tools["wrk"]), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            *([f"--timeout={timeout}"] if timeout else []), f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(argv, env=ctx.env, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr}")
    return parse_wrk(out.stdout)


# What section 2 serves: per guest, the servers that take turns under the
# same load. Every Wisp variant but the p3 reuse ones gives each request a
# fresh instance, as `wasmtime serve` does for wasi:http@0.2 components.
P3_REUSE = ["--isolation", "instance", "--idle-timeout", "1s"]
HTTP_GROUPS = {
    "hello": [
        ("Wisp", lambda ctx, port: wisp_serve(ctx, port, "hello")),
        ("wasmtime serve", lambda ctx, port: wasmtime_serve(ctx, port, "hello")),
        ("native hyper", lambda ctx, port: [ctx.tools["hyper"], f"127.0.0.1:{port}"]),
    ],
    "js-hello": [
        ("Wisp", lambda ctx, port: wisp_serve(ctx, port, "js-hello")),
        ("wasmtime serve", lambda ctx, port: wasmtime_serve(ctx, port, "js-hello")),
    ],
    "py-hello": [
        ("Wisp", lambda ctx, port: wisp_serve(ctx, port, "py-hello")),
        ("wasmtime serve", lambda ctx, port: wasmtime_serve(ctx, port, "py-hello")),
    ],
    # wasmtime serve reuses p3 instances by default: 16 requests at once,
    # 128 in all, 1 s idle timeout. Wisp's concurrency = 16 row matches it.
    "p3-hello": [
        ("Wisp, invocation", lambda ctx, port: wisp_serve(ctx, port, "p3-hello")),
        ("Wisp, instance, concurrency 1",
         lambda ctx, port: wisp_serve(ctx, port, "p3-hello", *P3_REUSE, "--concurrency", "1")),
        ("Wisp, instance, concurrency 16",
         lambda ctx, port: wisp_serve(ctx, port, "p3-hello", *P3_REUSE, "--concurrency", "16",
                                      "--max-requests-per-instance", "128")),
        ("wasmtime serve", lambda ctx, port: wasmtime_serve(ctx, port, "p3-hello")),
    ],
}


def http(ctx, guests):
    """{guest: {server: [runs]}} for every guest in `guests`."""
    results = {}
    for guest in guests:
        wasm = ctx.tools["guests"] / f"{guest}.wasm"
        if not wasm.exists():
            raise RuntimeError(f"{wasm} is missing; run scripts/build-guests")
        results[guest] = http_group(ctx, guest, HTTP_GROUPS[guest])
    return results


# What a server spends per request, counted by `perf stat` on its process
# during each run: the two cores are shared by the server and wrk, so req/s
# follows CPU per request, and page faults (with the TLB shootdowns each
# costs on a 2-core VM) are what differ most between machines.
SERVER_EVENTS = ["task-clock", "page-faults"]


def per_request(stat, requests):
    """{cpu_us, faults} per request from a PerfStat of SERVER_EVENTS (None
    each when perf could not count)."""
    if not stat.counts or not requests:
        return {"cpu_us": None, "faults": None}
    return {"cpu_us": stat.counts["task-clock"] * 1000 / requests,
            "faults": stat.counts["page-faults"] / requests}


def http_group(ctx, guest, variants):
    """Same guest, same load; the servers take turns so that noise from the
    rest of the machine hits each of them alike."""
    seconds, warmup = (3, 1) if ctx.quick else (10, 5)
    servers = []
    for name, argv in with_base(ctx, variants):
        port = free_port()
        servers.append(Server(ctx, name, argv(ctx, port), port))
    results = {s.name: [] for s in servers}
    try:
        bodies = {}
        for s in servers:
            # JS and Python components take a while to compile the first time.
            s.start(timeout=900)
            bodies[s.name] = body_of(get(s.port))
            ctx.log(f"2 HTTP {guest}: {s.name} up; warm-up {warmup}s")
            wrk(ctx, s.port, warmup)
        if len(set(bodies.values())) != 1:
            ctx.log(f"2 HTTP {guest}: warning: the servers answer differently: {bodies}")
        for run in range(ctx.runs):
            for s in servers:
                with PerfStat(ctx, s.proc.pid, SERVER_EVENTS) as stat:
                    r = wrk(ctx, s.port, seconds)
                r.update(per_request(stat, r["requests"]))
                ctx.log(f"2 HTTP {guest}: run {run + 1}/{ctx.runs} {s.name}: {r['rps']:,.0f} req/s, "
                        f"p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms"
                        + (f"; {r['cpu_us']:.1f} µs CPU, {r['faults']:.2f} page faults per request"
                           if r["cpu_us"] is not None else f"; no perf stat: {stat.error}"))
                results[s.name].append(r)
    finally:
        for s in servers:
            s.stop()
    return results


def body_of(response):
    """The body of a (status, raw body) answer, de-chunked: servers differ
    in framing, not in what the client reads."""
    status, raw = response
    if not re.match(rb"^[0-9a-fA-F]+\r\n", raw):
        return status, raw
    body = b""
    while True:
        size, _, rest = raw.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            return status, body
        body, raw = body + rest[:n], rest[n + 2:]


# --- 3. cold start -----------------------------------------------------------------

def wasmtime_cache_config(ctx, directory):
    path = ctx.scratch / f"wasmtime-cache-{directory.name}.toml"
    path.write_text(f'[cache]\ndirectory = "{directory}"\n')
    return path


def cold_start(ctx, runs):
    """Spawn → first 200, per guest: `runs[guest]` times per variant after
    one untimed run (which, for the warm-cache variants, fills the cache).
    Returns {guest: {variant: [ms]}}."""
    return {guest: cold_start_of(ctx, guest, n) for guest, n in runs.items()}


def cold_start_of(ctx, guest, runs):
    cache_root = ctx.scratch / f"cold-{guest}"
    cache_root.mkdir()

    def wisp_variant(fresh):
        def argv(ctx, port, i):
            # The binary's path keeps a base commit's caches apart (both
            # may be called `wisp`).
            binary = re.sub(r"[^A-Za-z0-9]+", "-", str(ctx.tools["wisp"])).strip("-")
            d = cache_root / (f"{binary}-fresh-{i}" if fresh else f"{binary}-warm")
            return wisp_serve(ctx, port, guest, "--cache-dir", d)
        return argv

    def wasmtime_variant(fresh):
        def argv(ctx, port, i):
            d = cache_root / (f"wasmtime-fresh-{i}" if fresh else "wasmtime-warm")
            return wasmtime_serve(ctx, port, guest, "-C", f"cache-config={wasmtime_cache_config(ctx, d)}")
        return argv

    variants = dict(with_base(ctx, [
        ("Wisp, fresh cache", wisp_variant(True)),
        ("Wisp, warm cache", wisp_variant(False)),
        ("wasmtime serve, fresh cache", wasmtime_variant(True)),
        ("wasmtime serve, warm cache", wasmtime_variant(False)),
    ]))
    results = {k: [] for k in variants}
    # Interleaved like section 2, so a burst of noise does not land on one variant.
    for i in range(-1, runs):
        for name, argv in variants.items():
            port = free_port()
            with Server(ctx, name, argv(ctx, port, i), port) as s:
                elapsed = s.start(timeout=900)
            if i >= 0:
                results[name].append(elapsed * 1e3)
        for d in cache_root.glob("*-fresh-*"):
            shutil.rmtree(d, ignore_errors=True)
        if i >= 0:
            ctx.log("3 cold start {}: run {}/{}: {}".format(
                guest, i + 1, runs, ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in results.items())))
    return results


# --- 4. density --------------------------------------------------------------------

# Largest first; a pool wasmtime cannot reserve makes wisp exit at start.
POOLS = [
    {"instances": 11000, "core_instances": 60000, "memories": 22000, "tables": 44000},
    {"instances": 11000, "core_instances": 60000, "memories": 22000, "tables": 44000, "max_memory": "256Mi"},
    {"instances": 6000, "core_instances": 33000, "memories": 12000, "tables": 24000, "max_memory": "256Mi"},
    {"instances": 3000, "core_instances": 16500, "memories": 6000, "tables": 12000, "max_memory": "256Mi"},
]


def manifest(ctx, pool, port, admin):
    keys = "\n".join(f"{k} = {json.dumps(v)}" for k, v in pool.items())
    text = f"""[server]
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin}"
shutdown_grace = "1s"

[server.pool]
{keys}

[[function]]
name = "slow"
component = "{ctx.tools['guests'] / 'slow.wasm'}"
route = "/"
memory = "64Mi"
timeout = "60s"
max_instances = 12000
max_queue = 0
"""
    path = ctx.scratch / f"density-{pool['instances']}.toml"
    path.write_text(text)
    return path


def memory_kib(pid):
    """VmRSS from status and Pss from smaps_rollup: RSS counts the shared
    copy-on-write image pages fully, PSS splits them among their sharers."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
    return {"rss_kib": rss, "pss_kib": pss}


def admin_token(ctx, state_dir):
    """The admin token: the environment's, else the one wisp generated into
    its state directory on first start."""
    return ctx.env.get("WISP_ADMIN_TOKEN") or (state_dir / "admin-token").read_text().strip()


async def in_flight(admin, function="slow"):
    """admin: (port, token); the admin API wants its own Host and the token."""
    port, token = admin
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode())
    data = await r.read()
    w.close()
    # Summed over triggers: the series is labelled with function and trigger.
    found = re.findall(rb'^wisp_in_flight\{function="' + re.escape(function.encode()) + rb'"[^}]*\} (\d+)', data, re.M)
    return sum(int(n) for n in found)


async def hold(ctx, port, admin, pid, n, ms):
    """Opens n connections, each asking for an ms-long sleep, samples memory
    once all n are in flight, then waits for every answer."""
    connecting = asyncio.Semaphore(256)  # a connect burst beyond the backlog only adds SYN retries
    request = f"GET /?ms={ms} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()

    async def one():
        async with connecting:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(request)
            await w.drain()
        try:
            status = await r.readline()
            await r.read()
            return b" 200 " in status
        finally:
            w.close()

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    t0 = time.monotonic()
    reached = 0
    while time.monotonic() - t0 < ms / 1000 * 0.7:
        reached = await in_flight(admin)
        if reached >= n:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # let the last instances settle into their sleep
    sample = memory_kib(pid)
    sample["in_flight"] = await in_flight(admin)
    ctx.log(f"4 density: {n:,} requested, {sample['in_flight']:,} in flight after "
            f"{time.monotonic() - t0:.1f}s: RSS {sample['rss_kib'] / 1024:.0f} MiB, "
            f"PSS {sample['pss_kib'] / 1024:.0f} MiB")
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), ms / 1000 + 120)
    sample.update(n=n, ok=sum(1 for d in done if d is True))
    failures = [d for d in done if isinstance(d, BaseException)]
    if failures:
        ctx.log(f"4 density: {len(failures)} connections failed, e.g. {failures[0]!r}")
    return sample


async def density(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one descriptor per held connection
    try:
        for pool in POOLS:
            if (result := await density_with(ctx, pool)) is not None:
                return result
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    raise RuntimeError("wisp refused every pool size tried; see the log lines above")


async def density_with(ctx, pool):
    """Measures with one pool size; None if wisp cannot reserve that pool."""
    counts = [100, 1000] if ctx.quick else [1000, 10000]
    port, admin = free_port(), free_port()
    argv = [ctx.tools["wisp"], "up", "-f", manifest(ctx, pool, port, admin)]
    with Server(ctx, f"density-{pool['instances']}", argv, port) as server:
        try:
            server.start()
        except RuntimeError as e:
            ctx.log(f"4 density: pool {pool} refused: {str(e).splitlines()[-1]}")
            return None
        pid = server.proc.pid
        token = admin_token(ctx, ctx.scratch / ".wisp")
        idle = memory_kib(pid)
        steps = []
        for n in counts:
            if n > pool["instances"]:
                ctx.log(f"4 density: skipping {n:,}: the pool holds {pool['instances']:,}")
                continue
            # Long enough that every connection is open before the first answers.
            ms = 8000 if n <= 1000 else 20000
            steps.append(await hold(ctx, port, (admin, token), pid, n, ms))
    note = "" if pool is POOLS[0] else "the pool asked for (instances = 11000) was refused; the largest that worked"
    return {"pool": ", ".join(f"{k} = {v}" for k, v in pool.items()), "idle": idle, "steps": steps, "note": note}


# --- 5. noisy neighbours -----------------------------------------------------------

# The functions of section 5: name (also the route, /name), guest, manifest
# keys beyond the route, extra `wasmtime serve` flags, and the path that
# tells a lone `wasmtime serve` it is up (None: an accepted connection; a GET
# would start a loop that never ends, or a bomb).
NOISY_FUNCTIONS = [
    ("hello", "hello", {}, [], "/"),
    ("spin", "loop", {"timeout": "60s", "max_instances": 8}, [], None),
    # The same 128 MiB limit for wasmtime serve: without it each bomb grows
    # to 4 GiB, and eight of them take the machine down, not just a core.
    ("bomb", "memory-bomb", {"max_instances": 8, "memory": "128Mi"},
     ["-W", f"max-memory-size={128 << 20}"], None),
    ("burn", "burn", {"max_instances": 8}, [], "/"),
]
# Situations: key, label, and the background load (function, path) beside
# which hello is measured.
NOISY_SITUATIONS = [
    ("alone", "hello alone", None),
    ("spinners", "beside 8 spinners", ("spin", "/spin")),
    ("bombs", "beside 8 memory bombs", ("bomb", "/bomb")),
    ("burners", "beside 8 burn?ms=50 loops", ("burn", "/burn?ms=50")),
]
NOISY_SETUPS = ["Wisp", "wasmtime serve"]
NOISY_CLIENTS = 8


def noisy_state(ctx, port):
    return ctx.scratch / f"noisy-state-{port}"


def noisy_manifest(ctx, port, admin):
    """One `wisp up` app with the four functions, its own state directory
    (a fresh deploy each start; compiled code comes from WISP_CACHE_DIR)."""
    text = f"""[server]
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin}"
state_dir = {json.dumps(str(noisy_state(ctx, port)))}
shutdown_grace = "1s"
"""
    for name, guest, settings, _, _ in NOISY_FUNCTIONS:
        text += f"""
[[function]]
name = "{name}"
component = {json.dumps(str(ctx.tools['guests'] / f'{guest}.wasm'))}
route = "/{name}"
""" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    path = ctx.scratch / f"noisy-{port}.toml"
    path.write_text(text)
    return path


def noisy_servers(ctx, setup):
    """(servers, {function: port}, admin (port, state dir) or None) of one
    setup: one `wisp up` for all functions, or one `wasmtime serve` per
    function."""
    if setup == "Wisp":
        port, admin = free_port(), free_port()
        argv = [ctx.tools["wisp"], "up", "-f", noisy_manifest(ctx, port, admin)]
        return [Server(ctx, "noisy wisp", argv, port, probe="/hello")], \
            {name: port for name, *_ in NOISY_FUNCTIONS}, (admin, noisy_state(ctx, port))
    servers, ports = [], {}
    for name, guest, _, flags, probe in NOISY_FUNCTIONS:
        port = free_port()
        servers.append(Server(ctx, f"noisy wasmtime serve {name}", wasmtime_serve(ctx, port, guest, *flags),
                              port, probe=probe))
        ports[name] = port
    return servers, ports, None


class Clients:
    """`n` threads, each sending GET `path` again and again over a
    keep-alive connection until stopped. Nothing they meet raises: a failed
    request is counted, its connection reopened. Every socket has a
    timeout, and stop() shuts the open ones, so a request the server never
    answers (a spinner) does not outlive the measurement."""

    def __init__(self, port, path, n, timeout):
        self.port, self.path, self.timeout = port, path, timeout
        self.stopping = threading.Event()
        self.done = []      # (perf_counter, status) per answered request
        self.failed = []    # repr of each failure before stop()
        self.conns = [None] * n
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def loop(self, i):
        while not self.stopping.is_set():
            conn = self.conns[i] = HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                while not self.stopping.is_set():
                    conn.request("GET", self.path)
                    response = conn.getresponse()
                    response.read()
                    self.done.append((time.perf_counter(), response.status))
            except Exception as e:  # noqa: BLE001 -- counted, never raised
                if not self.stopping.is_set():
                    self.failed.append(repr(e))
                    self.stopping.wait(0.05)  # a dead server must not make this a busy loop
            finally:
                conn.close()

    def stop(self):
        self.stopping.set()
        for conn in self.conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for t in self.threads:
            t.join(5)

    def summary(self, t0, t1):
        """What was answered between t0 and t1 (the wrk run), by status."""
        statuses = collections.Counter(status for t, status in self.done if t0 <= t <= t1)
        return {"answered": sum(statuses.values()), "ok": statuses.get(200, 0),
                "ok_per_s": statuses.get(200, 0) / (t1 - t0),
                "answered_per_s": sum(statuses.values()) / (t1 - t0),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "failures": len(self.failed), "first_failure": self.failed[0] if self.failed else None}


def noisy(ctx):
    """hello under wrk -t1 -c8 alone and beside each background load, in one
    Wisp process and with each function in its own `wasmtime serve`
    process. Returns {setup: {situation: [runs]}}; each run is wrk's figures
    for hello plus what the background clients got. Every measurement starts
    its servers afresh: wasmtime serve's loops never end, and a SIGKILL is
    the only way to stop them."""
    for _, guest, *_ in NOISY_FUNCTIONS:
        wasm = ctx.tools["guests"] / f"{guest}.wasm"
        if not wasm.exists():
            raise RuntimeError(f"{wasm} is missing; run scripts/build-guests")
    seconds, warmup = (3, 1) if ctx.quick else (10, 5)
    results = {setup: {key: [] for key, *_ in NOISY_SITUATIONS} for setup in NOISY_SETUPS}
    # Situations and setups take turns, like the servers of section 2.
    for run in range(ctx.runs):
        for key, label, background in NOISY_SITUATIONS:
            for setup in NOISY_SETUPS:
                r = noisy_once(ctx, setup, background, seconds, warmup)
                bg = r["background"]
                ctx.log(f"5 noisy neighbours: run {run + 1}/{ctx.runs} {label}, {setup}: "
                        f"{r['rps']:,.0f} req/s, p50 {fmt_ms(r['p50_ms'])}, p99 {fmt_ms(r['p99_ms'])}"
                        + (f", {r['errors']} errors" if r["errors"] else "")
                        + (f"; {background[0]}: {bg['answered_per_s']:.1f} answers/s {bg['statuses']}, "
                           f"{bg['failures']} failures" if bg else "")
                        + (f", {r['in_flight']} in flight" if r.get("in_flight") is not None else ""))
                if bg and bg["first_failure"]:
                    ctx.log(f"5 noisy neighbours: first {background[0]} failure: {bg['first_failure']}")
                results[setup][key].append(r)
    return results


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.3f} ms"


def noisy_once(ctx, setup, background, seconds, warmup):
    servers, ports, admin = noisy_servers(ctx, setup)
    clients = None
    hello = dict(threads=1, connections=8, path="/hello")
    try:
        for s in servers:
            s.start()
        wrk(ctx, ports["hello"], warmup, **hello)
        in_flight_at_start = None
        if background:
            name, path = background
            # A spinner's request must stay open through the whole run.
            clients = Clients(ports[name], path, NOISY_CLIENTS,
                              timeout=seconds + 60 if name == "spin" else 30).start()
            time.sleep(1)  # let them get going
            if admin:
                try:
                    port, state = admin
                    admin_api = (port, admin_token(ctx, state))
                    in_flight_at_start = asyncio.run(in_flight(admin_api, name))
                except OSError as e:
                    ctx.log(f"5 noisy neighbours: could not read Wisp's metrics: {e}")
        t0 = time.perf_counter()
        try:
            r = wrk(ctx, ports["hello"], seconds, **hello)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            # hello starved outright is a result, not a broken benchmark.
            ctx.log(f"5 noisy neighbours: {setup}: wrk gave no figures: {e}")
            r = {"rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": None, "wrk_error": str(e)[-500:]}
        t1 = time.perf_counter()
        if clients:
            clients.stop()
        r["background"] = clients.summary(t0, t1) if clients else None
        r["in_flight"] = in_flight_at_start
        r["seconds"] = t1 - t0
        return r
    finally:
        if clients:
            clients.stop()
        # wasmtime serve waits for its never-ending loops on SIGINT; Wisp
        # stops them after its 1 s shutdown_grace.
        for s in servers:
            s.stop(grace=3)

#!/usr/bin/env python3
"""Ruby through Wisp (issue 14): cold start and requests/s of the example
app's `ruby-hello`, a CGI command function (`handler = "cgi"`): every
request runs `ruby.wasm` (the interpreter with its stdlib, ~30 MB) from
`_start` with `guest-examples/ruby-app/hello.rb`.

Not one of `benches/run`'s sections (the first compile of ruby.wasm alone
takes ~30 s); run it after `benches/run` has built and installed everything:

    python3 benches/ruby.py            # ~4 minutes once built
    python3 benches/ruby.py --quick    # short runs

Three variants: pre-initialized (`snapshot = true`, the default: ruby.wasm
exports `wizer-initialize`, so the interpreter boots at deploy with rubygems
and each request runs from that snapshot), and without a snapshot, with
`--disable-gems` and with rubygems (Ruby's default). Each gets:

- cold start: `wisp up` spawned on a manifest with just `ruby-hello`
  (a fresh state directory each time, the artifact cache warm: one untimed
  start compiles ruby.wasm first) → the first 200 on `GET /ruby/x`, which
  includes one run of the interpreter; runs interleaved, median and min;
- load: one `wisp up`, a 3 s `wrk` warm-up, then `wrk -t2 -c2` and
  `wrk -t2 -c16` for 10 s each (`--timeout 10s`: with rubygems a request
  waits seconds behind 15 others), 3 runs interleaved, medians of req/s and
  of wrk's per-request p50 / p99; plus Wisp's CPU time per request and the
  cores other processes took meanwhile.

Writes results/ruby.md and results/ruby.json next to this file.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sections
from events import BUSY_CORES, children_cpu_seconds, cpu_seconds, fmt, machine_busy_seconds, med
from report import BENCHES, REPO, environment, log, tool_paths, write_results
from sections import Server, free_port

# name: (args, snapshot). ruby.wasm exports `wizer-initialize`: with
# `snapshot = true` (Wisp's default) the interpreter boots at deploy, rubygems
# included, and interpreter options in `args` no longer apply.
VARIANTS = {
    "snapshot (rubygems booted at deploy)": (["/app/hello.rb"], True),
    "no snapshot, --disable-gems": (["--disable-gems", "/app/hello.rb"], False),
    "no snapshot, rubygems": (["/app/hello.rb"], False),
}
PATH = "/ruby/x"
CONNECTIONS = [2, 16]


def manifest(ctx, port, state, variant):
    args, snapshot = variant
    text = f"""[server]
listen = "127.0.0.1:{port}"
state_dir = {json.dumps(str(state))}
shutdown_grace = "1s"

# As guest-examples/wisp.toml's ruby-hello.
[[function]]
name = "ruby-hello"
component = {json.dumps(str(ctx.tools['guests'] / 'ruby.wasm'))}
handler = "cgi"
route = "/ruby"
args = {json.dumps(args)}
dirs = {{ "/app" = {json.dumps(str(REPO / 'guest-examples/ruby-app'))} }}
timeout = "10s"
snapshot = {json.dumps(snapshot)}
"""
    path = ctx.scratch / f"ruby-{port}.toml"
    path.write_text(text)
    return path


def server(ctx, name, variant):
    port = free_port()
    state = ctx.scratch / f"ruby-state-{port}"
    return Server(ctx, f"ruby {name}", [ctx.tools["wisp"], "up", "-f", manifest(ctx, port, state, variant)],
                  port, probe=PATH), state


def start_once(ctx, name, variant):
    """ms from spawn to the first 200 on PATH."""
    s, state = server(ctx, name, variant)
    try:
        with s:
            return s.start(timeout=900) * 1e3
    finally:
        shutil.rmtree(state, ignore_errors=True)


def wrk_once(ctx, s, seconds, connections):
    pid = s.proc.pid
    t0 = time.perf_counter()
    wisp, load, busy = cpu_seconds(pid), children_cpu_seconds(), machine_busy_seconds()
    r = sections.wrk(ctx, s.port, seconds, threads=2, connections=connections, path=PATH, timeout="10s")
    elapsed = time.perf_counter() - t0
    wisp, load = cpu_seconds(pid) - wisp, children_cpu_seconds() - load
    other = max(0.0, machine_busy_seconds() - busy - wisp - load)
    r.update(connections=connections, wisp_cores=wisp / elapsed, other_cores=other / elapsed,
             wisp_cpu_ms_per_request=wisp / (r["rps"] * seconds) * 1e3 if r["rps"] else None)
    return r


def measure(ctx, cold_runs):
    res = {"cold": {v: [] for v in VARIANTS}, "load": {v: {str(c): [] for c in CONNECTIONS} for v in VARIANTS}}
    wasm = ctx.tools["guests"] / "ruby.wasm"
    if not wasm.exists():
        raise RuntimeError(f"{wasm} is missing; run scripts/build-guests ruby")
    # One untimed start per variant fills the artifact cache: compiled code,
    # and for the snapshot its pre-initialization (Wizer on the module, then
    # adapting and compiling the snapshot).
    res["fresh_cache_ms"] = {}
    for name, variant in VARIANTS.items():
        log(f"ruby: {name}: compiling into the artifact cache (untimed start)")
        first = start_once(ctx, "compile", variant)
        log(f"ruby: {name}: first start with a cold cache: {first / 1e3:.1f} s")
        res["fresh_cache_ms"][name] = first
    for i in range(cold_runs):
        for name, variant in VARIANTS.items():
            ms = start_once(ctx, name, variant)
            res["cold"][name].append(ms)
        log(f"ruby: cold start run {i + 1}/{cold_runs}: "
            + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in res["cold"].items()))
    seconds, warmup = (3, 1) if ctx.quick else (10, 3)
    servers = {}
    try:
        for name, variant in VARIANTS.items():
            s, state = server(ctx, name, variant)
            servers[name] = (s, state)
            s.start(timeout=900)
            sections.wrk(ctx, s.port, warmup, threads=2, connections=2, path=PATH, timeout="10s")
        for run in range(ctx.runs):
            for c in CONNECTIONS:
                for name, (s, _) in servers.items():
                    r = wrk_once(ctx, s, seconds, c)
                    res["load"][name][str(c)].append(r)
                    log(f"ruby: run {run + 1}/{ctx.runs} {name}, wrk -t2 -c{c}: {r['rps']:,.1f} req/s, "
                        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
                        + (f", {r['errors']} errors" if r["errors"] else "")
                        + f"; Wisp {fmt(r['wisp_cpu_ms_per_request'], ' ms')} CPU/request, "
                        f"{r['wisp_cores']:.2f} cores; other processes {r['other_cores']:.2f} cores")
    finally:
        for s, state in servers.values():
            s.stop()
            shutil.rmtree(state, ignore_errors=True)
    return res


def table(res):
    out = ["| variant | cold start, warm cache (median, min) | wrk -c | req/s | p50 | p99 "
           "| Wisp CPU / request | other processes' cores |",
           "|---|---|---|---|---|---|---|---|"]
    for name in VARIANTS:
        cold = res["cold"][name]
        for c in CONNECTIONS:
            runs = res["load"][name][str(c)]
            other = med(r["other_cores"] for r in runs)
            errors = sum(r["errors"] for r in runs)
            out.append(f"| `{name}` | {fmt(med(cold), ' ms')} ({fmt(min(cold) if cold else None, ' ms')}, "
                       f"{len(cold)} runs) | {c} | {fmt(med(r['rps'] for r in runs), digits=1)}"
                       + (f" ({errors:,} errors)" if errors else "")
                       + f" | {fmt(med(r['p50_ms'] for r in runs), ' ms')} "
                       f"| {fmt(med(r['p99_ms'] for r in runs), ' ms')} "
                       f"| {fmt(med(r['wisp_cpu_ms_per_request'] for r in runs), ' ms')} "
                       f"| {fmt(other, digits=2)}{' (busy)' if other is not None and other > BUSY_CORES else ''} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, to check that everything works")
    ap.add_argument("--runs", type=int, help="wrk runs per variant and connection count (default 3)")
    ap.add_argument("--cold-runs", type=int, help="cold starts per variant (default 5)")
    ap.add_argument("--out", type=Path, default=BENCHES / "results")
    args, argv = ap.parse_args(), sys.argv[1:]
    tools = tool_paths()
    missing = [f"{k} ({tools[k]})" for k in ("wisp", "wrk") if not Path(tools[k]).exists()]
    if missing:
        sys.exit(f"ruby.py: missing {', '.join(missing)}; run benches/run, which builds and installs them")
    scratch = Path(tempfile.mkdtemp(prefix="wisp-bench-ruby-"))
    env = dict(os.environ)
    env["WISP_LOG"] = "warn"
    env["WISP_CACHE_DIR"] = str(scratch / "wisp-cache")
    envinfo = environment(tools, env, argv)
    envinfo["command"] = " ".join(["python3 benches/ruby.py", *argv])
    runs = args.runs or (1 if args.quick else 3)
    ctx = sections.Context(tools=tools, env=env, scratch=scratch, quick=args.quick, runs=runs, log=log)
    started = time.monotonic()
    try:
        res = measure(ctx, args.cold_runs or (2 if args.quick else 5))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = table(res)
    fresh = "First start with an empty artifact cache: " + ", ".join(
        f"{name} {ms / 1e3:.1f} s" for name, ms in res["fresh_cache_ms"].items()) + "."
    print(f"{text}\n\n{fresh}\n\n(took {(time.monotonic() - started) / 60:.1f} min)")
    write_results(args.out, "ruby", "Ruby (CGI) through Wisp", envinfo, f"{text}\n\n{fresh}", res)


if __name__ == "__main__":
    main()

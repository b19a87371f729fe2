#!/usr/bin/env python3
"""Where a JS and a Python request's time goes (issue 18): per guest,
Wisp with a fresh instance per request, Wisp with reused instances
(`--isolation instance`) and `wasmtime serve` (a fresh instance per
request) under the same load, taking turns; Rust `hello` is the reference.

Not one of `benches/run`'s sections; run it after `benches/run` (or
`cargo build --release -p wisp-runtime` and `scripts/build-guests`):

    python3 benches/interp.py                      # ~6 minutes once compiled
    python3 benches/interp.py --quick              # short runs
    python3 benches/interp.py --guests js-hello --servers fresh \\
        --variant 'knob 16:WISP_MY_KNOB=16'        # one more Wisp with its own env

Each measured run is `wrk -t2 -c16` for 10 s (3 s with --quick) after a
warm-up, with `perf stat -e task-clock,page-faults,minor-faults,major-faults,
context-switches -p PID` on the server over the same window: CPU time,
page faults and context switches per request (whole process: host, guest
and kernel work done on its behalf), plus the server's RSS and PSS after
the run, and the load average and the cores other processes took meanwhile
(over 0.25 is flagged: the two cores were not the servers' alone).

`--variant LABEL:KEY=VALUE[,KEY=VALUE]` adds a Wisp fresh-instance server
started with extra environment variables (experiments with a local build
that reads them); `--wisp PATH` runs another `wisp` binary (e.g. a copy,
so a rebuild of the shared target dir cannot swap it mid-run).

Writes results/interp.md and results/interp.json next to this file.
"""

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sections
from events import BUSY_CORES, fmt, med
from report import BENCHES, HTTP_TARGETS, environment, log, tool_paths, write_results
from sections import PerfStat, Server, free_port, memory_kib, wasmtime_serve, wisp_serve
from tasks import Usage

GUESTS = ["hello", "js-hello", "py-hello"]
PERF_EVENTS = ["task-clock", "page-faults", "minor-faults", "major-faults", "context-switches"]
# Instance mode, one request at a time per instance (wasi:http@0.2 guests
# allow no more): up to 16 instances for wrk's 16 connections, each reused
# for as long as the run lasts.
REUSED = ["--isolation", "instance"]
SERVERS = {
    "fresh": ("Wisp, fresh instance", lambda ctx, port, guest: wisp_serve(ctx, port, guest)),
    "reused": ("Wisp, reused instance", lambda ctx, port, guest: wisp_serve(ctx, port, guest, *REUSED)),
    "wasmtime": ("wasmtime serve", lambda ctx, port, guest: wasmtime_serve(ctx, port, guest)),
}


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_once(ctx, server, seconds):
    """One wrk run against a started server, with perf stat and CPU usage
    over the same window."""
    pid, load = server.proc.pid, loadavg()
    with PerfStat(ctx, pid, PERF_EVENTS) as perf:
        with Usage(pid) as usage:
            r = sections.wrk(ctx, server.port, seconds)
    r.update(loadavg=load, **usage.cores(), **memory_kib(pid))
    n = r["requests"]
    if perf.counts and n:
        c = perf.counts
        r.update(sections.per_request(perf, n))
        r.update(major_faults=c["major-faults"] / n, switches=c["context-switches"] / n,
                 cores=c["task-clock"] / 1e3 / usage.seconds)
    elif perf.error:
        ctx.log(f"interp: perf stat on {server.name}: {perf.error}")
    return r


def measure(ctx, guests, servers, variants):
    """{guest: {server name: [runs]}}; the servers of a guest take turns."""
    seconds, warmup = (3, 1) if ctx.quick else (10, 5)
    res = {}
    for guest in guests:
        wasm = ctx.tools["guests"] / f"{guest}.wasm"
        if not wasm.exists():
            raise RuntimeError(f"{wasm} is missing; run scripts/build-guests")
        started = []
        try:
            for name, argv, env in servers + variants:
                port = free_port()
                sctx = dataclasses.replace(ctx, env={**ctx.env, **env}) if env else ctx
                s = Server(sctx, f"{guest} {name}", argv(ctx, port, guest), port)
                started.append((name, s))
                # JS and Python components compile for a while the first time.
                s.start(timeout=900)
                ctx.log(f"interp {guest}: {name} up; warm-up {warmup}s")
                sections.wrk(ctx, port, warmup)
            res[guest] = {name: [] for name, _ in started}
            for run in range(ctx.runs):
                for name, s in started:
                    r = measure_once(ctx, s, seconds)
                    res[guest][name].append(r)
                    ctx.log(f"interp {guest}: run {run + 1}/{ctx.runs} {name}: {r['rps']:,.0f} req/s, "
                            f"p99 {r['p99_ms']:.2f} ms, {fmt(r.get('cpu_us'), ' µs')} CPU/req, "
                            f"{fmt(r.get('faults'))} faults/req, RSS {r['rss_kib'] / 1024:.0f} MiB; "
                            f"load {r['loadavg']}, other processes {r['other_cores']:.2f} cores")
        finally:
            for _, s in started:
                s.stop()
    return res


def agg(runs):
    keys = ("rps", "p50_ms", "p99_ms", "cpu_us", "faults", "major_faults", "switches", "cores",
            "rss_kib", "pss_kib", "other_cores")
    a = {k: med(r.get(k) for r in runs) for k in keys}
    a["errors"] = sum(r["errors"] for r in runs)
    a["loadavg"] = ", ".join(r["loadavg"].split()[0] for r in runs)
    return a


def table(res):
    out = ["| guest | server | req/s | p50 | p99 | CPU / request | page faults / request "
           "| context switches / request | server cores | RSS / PSS after | load avg (1 min) "
           "| other processes' cores |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = []
    for guest, servers in res.items():
        aggs = {name: agg(runs) for name, runs in servers.items()}
        for name, a in aggs.items():
            busy = a["other_cores"] is not None and a["other_cores"] > BUSY_CORES
            out.append(f"| {guest} | {name} | {fmt(a['rps'])}"
                       + (f" ({a['errors']:,} errors)" if a["errors"] else "")
                       + f" | {fmt(a['p50_ms'], ' ms')} | {fmt(a['p99_ms'], ' ms')} "
                       f"| {fmt(a['cpu_us'], ' µs')} | {fmt(a['faults'], digits=1)} "
                       f"| {fmt(a['switches'], digits=2)} | {fmt(a['cores'], digits=2)} "
                       f"| {fmt(a['rss_kib'] and a['rss_kib'] / 1024, ' MiB')} / "
                       f"{fmt(a['pss_kib'] and a['pss_kib'] / 1024, ' MiB')} | {a['loadavg']} "
                       f"| {fmt(a['other_cores'], digits=2)}{' (busy)' if busy else ''} |")
        wt = aggs.get("wasmtime serve")
        fresh = aggs.get(SERVERS["fresh"][0])
        for name, a in aggs.items():
            if name.startswith("Wisp") and wt and wt["rps"] and a["rps"]:
                want = HTTP_TARGETS.get(guest)
                target = f" (target ≥ {want:.0f}×)" if want and name == SERVERS["fresh"][0] else ""
                ratios.append(f"- {guest}: {name} / wasmtime serve: {a['rps'] / wt['rps']:.2f}× req/s{target}")
            if fresh and name != SERVERS["fresh"][0] and name.startswith("Wisp") and fresh["rps"] and a["rps"]:
                ratios.append(f"- {guest}: {name} / {SERVERS['fresh'][0]}: {a['rps'] / fresh['rps']:.2f}× "
                              f"req/s, CPU / request {fmt(a['cpu_us'] and fresh['cpu_us'] and a['cpu_us'] / fresh['cpu_us'], '×', 2)}")
    return "\n".join(out) + "\n\nSame-run ratios (medians):\n\n" + "\n".join(ratios)


def parse_variant(text):
    """'LABEL:KEY=VALUE,KEY=VALUE' → (label, {KEY: VALUE})."""
    label, _, assignments = text.partition(":")
    env = {}
    for item in filter(None, assignments.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise argparse.ArgumentTypeError(f"--variant {text!r}: {item!r} is not KEY=VALUE")
        env[key.strip()] = value
    if not label or not env:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: expected LABEL:KEY=VALUE[,KEY=VALUE]")
    return label, env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, to check that everything works")
    ap.add_argument("--runs", type=int, help="measured runs per server (default 3)")
    ap.add_argument("--guests", default=",".join(GUESTS), help="from: " + ", ".join(GUESTS))
    ap.add_argument("--servers", default=",".join(SERVERS), help="from: " + ", ".join(SERVERS))
    ap.add_argument("--variant", action="append", type=parse_variant, default=[],
                    help="one more Wisp fresh-instance server, LABEL:KEY=VALUE[,KEY=VALUE] (its env)")
    ap.add_argument("--wisp", type=Path, help="the wisp binary (default: the release build)")
    ap.add_argument("--cache-dir", type=Path,
                    help="Wisp's artifact cache (default: a fresh one, so JS and Python compile first)")
    ap.add_argument("--out", type=Path, default=BENCHES / "results")
    args, argv = ap.parse_args(), sys.argv[1:]
    tools = tool_paths()
    if args.wisp:
        tools["wisp"] = args.wisp.resolve()
    chosen = [s for s in args.servers.split(",") if s]
    if unknown := [s for s in chosen if s not in SERVERS]:
        sys.exit(f"interp.py: unknown --servers {', '.join(unknown)}; from: {', '.join(SERVERS)}")
    need = ["wisp", "wrk"] + (["wasmtime"] if "wasmtime" in chosen else [])
    if missing := [f"{k} ({tools[k]})" for k in need if not Path(tools[k]).exists()]:
        sys.exit(f"interp.py: missing {', '.join(missing)}; run benches/run, which builds and installs them")
    scratch = Path(tempfile.mkdtemp(prefix="wisp-bench-interp-"))
    env = dict(os.environ)
    env["WISP_LOG"] = "warn"
    env["WISP_CACHE_DIR"] = str(args.cache_dir or scratch / "wisp-cache")
    envinfo = environment(tools, env, argv)
    envinfo["command"] = " ".join(["python3 benches/interp.py", *argv])
    envinfo["load average at start"] = loadavg()
    ctx = sections.Context(tools=tools, env=env, scratch=scratch, quick=args.quick,
                           runs=args.runs or (1 if args.quick else 3), log=log)
    servers = [(*SERVERS[s], None) for s in chosen]
    variants = [(f"Wisp, {label}", SERVERS["fresh"][1], extra) for label, extra in args.variant]
    started = time.monotonic()
    try:
        res = measure(ctx, [g for g in args.guests.split(",") if g], servers, variants)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = table(res)
    if args.variant:
        text += "\n\nVariants: " + "; ".join(
            f"{label}: {' '.join(f'{k}={v}' for k, v in extra.items())}" for label, extra in args.variant)
    print(f"{text}\n\n(took {(time.monotonic() - started) / 60:.1f} min)")
    write_results(args.out, "interp", "JS and Python per request", envinfo, text, res)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs every Wisp benchmark section and prints one table.

Called by `benches/run`, which builds the binaries and installs the peers
first. Sections:

  1. in-process cost per invocation (the `inprocess` binary);
  2. HTTP throughput and latency: Wisp, `wasmtime serve`, native hyper,
     same guest, same wrk load, interleaved runs;
  3. cold start: process spawn to first 200, fresh and warm artifact cache;
  4. density: resident memory with N sleeping invocations in flight.

Every figure is the median of several runs. The machine is shared and
noisy, so the ratios between servers measured in the same run are the
numbers to trust, not the absolute ones. Writes results/latest.md,
results/latest.json and results/chart.png next to this file.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sections

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/wisp/target"))
TOOLS = Path.home() / ".cache/wisp/tools/bin"


def tool_paths():
    return {
        "wisp": TARGET / "release/wisp",
        "inprocess": TARGET / "release/inprocess",
        "hyper": TARGET / "release/hyper-hello",
        "wasmtime": Path(os.environ.get("WISP_BENCH_WASMTIME", TOOLS / "wasmtime")),
        "wrk": Path(shutil.which("wrk") or "wrk"),
        "guests": REPO / "guest-examples/target",
    }


def first_line(argv):
    """First line a tool prints about itself (wrk exits 1 on --version)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def environment(tools, env, argv):
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["benches/run", *argv]),
        "commit": git or "unknown",
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kib / 1048576:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()}",
        "vm.max_map_count": Path("/proc/sys/vm/max_map_count").read_text().strip(),
        "RLIMIT_NOFILE (hard)": str(resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        # Every server gets exactly this environment.
        "RUST_BACKTRACE": env.get("RUST_BACKTRACE", "(unset)"),
        "RUST_LOG": env.get("RUST_LOG", "(unset)"),
        "WISP_LOG": env.get("WISP_LOG", "(unset)"),
        "wisp": first_line([tools["wisp"], "--version"]),
        "wasmtime": first_line([tools["wasmtime"], "--version"]),
        "wrk": first_line([tools["wrk"], "--version"]),
        "rustc": first_line(["rustc", "--version"]),
        "python": sys.version.split()[0],
    }


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit="", digits=None):
    if v is None:
        return "n/a"
    if digits is None:
        digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return f"{v:,.{digits}f}{unit}"


def verdict(ok):
    return "met" if ok else "missed"


# --- summarising the raw results into the table --------------------------------

def inprocess_rows(res):
    rows = []
    names = {"fresh": "fresh instance, no snapshot",
             "fresh-snapshot": "fresh instance from snapshot",
             "warm": "reused warm instance"}
    for guest in ("hello", "init-heavy"):
        for mode in ("fresh", "fresh-snapshot", "warm"):
            runs = [r for r in res["inprocess"] if r["guest"] == guest and r["mode"] == mode]
            if not runs:
                continue
            p50, p99 = med(r["p50_us"] for r in runs), med(r["p99_us"] for r in runs)
            target = ""
            if guest == "hello" and mode == "fresh-snapshot":
                target = f"p50 ≤ 10 µs: {verdict(p50 <= 10)}"
            rows.append(("1 in-process", f"{guest}: {names[mode]}",
                         f"p50 {fmt(p50, ' µs')}, p99 {fmt(p99, ' µs')}", target))
        derived = [d for d in res["inprocess_derived"] if d["guest"] == guest]
        ratio = med(d["no_snapshot_over_snapshot_p50"] for d in derived)
        extra = med(d["snapshot_instance_over_warm_p50_us"] for d in derived)
        if guest == "init-heavy" and ratio is not None:
            rows.append(("1 in-process", "init-heavy: no snapshot / snapshot (p50)",
                         f"{fmt(ratio, '×')}", f"≥ 50×: {verdict(ratio >= 50)}"))
        if extra is not None:
            rows.append(("1 in-process", f"{guest}: fresh snapshot instance over warm (p50)",
                         f"+{fmt(extra, ' µs')}", "reported"))
    return rows


# Wisp/wasmtime serve req/s each guest must reach (issues 4 and 5).
HTTP_TARGETS = {"hello": 3.0, "js-hello": 5.0, "py-hello": 5.0}


def http_agg(res):
    """{guest: {server: {rps, p50_ms, p99_ms, errors, runs}}}, medians of runs."""
    return {guest: {name: {**{k: med(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")},
                           "errors": sum(r["errors"] for r in runs), "runs": len(runs)}
                    for name, runs in servers.items()}
            for guest, servers in res["http"].items()}


def http_rows(agg):
    rows = []
    for guest, servers in agg.items():
        section = f"2 HTTP {guest}"
        for name, a in servers.items():
            rows.append((section, f"{name} ({a['runs']} runs)",
                         f"{fmt(a['rps'], ' req/s')}, p50 {fmt(a['p50_ms'], ' ms')}, "
                         f"p99 {fmt(a['p99_ms'], ' ms')}"
                         + (f", {a['errors']} errors" if a["errors"] else ""), ""))
        wt = servers.get("wasmtime serve")
        for name, a in servers.items():
            if not name.startswith("Wisp") or not wt or not wt["rps"] or not a["rps"]:
                continue
            ratio, p99 = a["rps"] / wt["rps"], a["p99_ms"] / wt["p99_ms"]
            target = ""
            if (want := HTTP_TARGETS.get(guest)) is not None:
                ok = ratio >= want and (guest != "hello" or p99 < 1)
                target = f"≥ {want:.0f}× req/s{', lower p99' if guest == 'hello' else ''}: {verdict(ok)}"
            rows.append((section, f"{name} / wasmtime serve",
                         f"{fmt(ratio, '×')} req/s, p99 {fmt(p99, '×')}", target))
        hy, wisp = servers.get("native hyper"), servers.get("Wisp")
        if wisp and hy and hy["rps"]:
            rows.append((section, "Wisp / native hyper",
                         f"{fmt(wisp['rps'] / hy['rps'], '×', 2)} req/s, "
                         f"p99 {fmt(wisp['p99_ms'] / hy['p99_ms'], '×')}", "ceiling"))
    return rows


def cold_rows(res):
    rows = []
    for guest, variants in res["cold"].items():
        for key, runs in variants.items():
            ms = med(runs)
            target = ""
            if guest == "hello" and key == "Wisp, warm cache":
                target = f"≤ 20 ms: {verdict(ms is not None and ms <= 20)}"
            rows.append((f"3 cold start {guest}", key,
                         f"{fmt(ms, ' ms')} (min {fmt(min(runs, default=None), ' ms')}, "
                         f"{len(runs)} runs)", target))
        wisp, wt = med(variants.get("Wisp, warm cache", [])), med(variants.get("wasmtime serve, warm cache", []))
        if wisp and wt:
            rows.append((f"3 cold start {guest}", "Wisp / wasmtime serve, warm cache",
                         f"{fmt(wisp / wt, '×')} the time", ""))
    return rows


def density_rows(res):
    d = res["density"]
    if not d:
        return []
    rows = [("4 density", f"pool: {d['pool']}", d.get("note", ""), "")]
    idle = d["idle"]
    rows.append(("4 density", "idle (after one request)",
                 f"RSS {fmt(idle['rss_kib'] / 1024, ' MiB')}, PSS {fmt(idle['pss_kib'] / 1024, ' MiB')}", ""))
    for step in d["steps"]:
        n = step["n"]
        per = (step["rss_kib"] - idle["rss_kib"]) / step["in_flight"] if step["in_flight"] else None
        per_pss = (step["pss_kib"] - idle["pss_kib"]) / step["in_flight"] if step["in_flight"] else None
        rows.append(("4 density", f"{n:,} sleeping invocations in flight",
                     f"RSS {fmt(step['rss_kib'] / 1024, ' MiB')}, PSS {fmt(step['pss_kib'] / 1024, ' MiB')}; "
                     f"{fmt(per, ' KiB')} RSS / {fmt(per_pss, ' KiB')} PSS per invocation",
                     f"{step['in_flight']:,} in flight at sample, {step['ok']:,}/{n:,} answered 200"))
    return rows


def table(rows):
    out = ["| section | measurement | result | target / note |", "|---|---|---|---|"]
    out += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(out)


def chart(res, agg, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(19, 10))
    ax = axes[0][0]
    labels, p50s, p99s = [], [], []
    for guest in ("hello", "init-heavy"):
        for mode in ("fresh", "fresh-snapshot", "warm"):
            runs = [r for r in res["inprocess"] if r["guest"] == guest and r["mode"] == mode]
            if runs:
                labels.append(f"{guest}\n{mode}")
                p50s.append(med(r["p50_us"] for r in runs))
                p99s.append(med(r["p99_us"] for r in runs))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], p50s, 0.4, label="p50")
    ax.bar([i + 0.2 for i in x], p99s, 0.4, label="p99")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("µs per invocation (log)")
    ax.set_title("1. in-process: instantiate + handle + drop")
    ax.legend()

    ax = axes[0][1]
    hello = agg.get("hello", {})
    names = list(hello)
    bars = ax.bar(names, [hello[n]["rps"] or 0 for n in names], color=["C2", "C1", "C7"][:len(names)])
    for bar, n in zip(bars, names):
        ax.annotate(f"{hello[n]['rps'] or 0:,.0f}/s\np99 {hello[n]['p99_ms'] or 0:.2f} ms",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("requests/s (median)")
    ax.set_title("2. HTTP, Rust hello, wrk -t2 -c16")

    ax = axes[0][2]
    bars_at = [(f"{g}\n{n}", a["rps"] or 0, "C2" if n.startswith("Wisp") else "C1")
               for g, servers in agg.items() if g != "hello" for n, a in servers.items()]
    if bars_at:
        bars = ax.bar(range(len(bars_at)), [b[1] for b in bars_at], color=[b[2] for b in bars_at])
        ax.set_xticks(range(len(bars_at)), [b[0] for b in bars_at], fontsize=6, rotation=30, ha="right")
        for bar, b in zip(bars, bars_at):
            ax.annotate(f"{b[1]:,.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
    ax.set_ylabel("requests/s (median, log)")
    ax.set_title("2. HTTP, JS / Python / p3 hello: Wisp (green) vs wasmtime serve")

    ax = axes[1][0]
    keys = [(g, k) for g, variants in res["cold"].items() for k in variants]
    vals = [med(res["cold"][g][k]) or 0 for g, k in keys]
    bars = ax.barh([f"{g}: {k}" for g, k in keys], vals,
                   color=["C2" if k.startswith("Wisp") else "C1" for _, k in keys])
    for bar, v in zip(bars, vals):
        ax.annotate(f" {v:,.1f} ms", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("spawn → first 200, ms (median, log)")
    ax.set_title("3. cold start")

    ax = axes[1][1]
    d = res["density"]
    if d:
        xs = [0] + [s["in_flight"] for s in d["steps"]]
        ax.plot(xs, [d["idle"]["rss_kib"] / 1024] + [s["rss_kib"] / 1024 for s in d["steps"]], "o-", label="VmRSS")
        ax.plot(xs, [d["idle"]["pss_kib"] / 1024] + [s["pss_kib"] / 1024 for s in d["steps"]], "s--", label="Pss")
        ax.legend()
    ax.set_xlabel("sleeping invocations in flight")
    ax.set_ylabel("MiB")
    ax.set_title("4. density: Wisp resident memory (slow guest)")

    ax = axes[1][2]
    ratios = [(f"{g}\n{n}", a["rps"] / servers["wasmtime serve"]["rps"])
              for g, servers in agg.items() if servers.get("wasmtime serve", {}).get("rps")
              for n, a in servers.items() if n.startswith("Wisp") and a["rps"]]
    if ratios:
        ax.bar(range(len(ratios)), [r[1] for r in ratios], color="C2")
        ax.set_xticks(range(len(ratios)), [r[0] for r in ratios], fontsize=6, rotation=30, ha="right")
        for i, r in enumerate(ratios):
            ax.annotate(f"{r[1]:.1f}×", (i, r[1]), ha="center", va="bottom", fontsize=8)
        ax.axhline(1, color="grey", lw=0.8)
    ax.set_ylabel("Wisp req/s ÷ wasmtime serve req/s, same run")
    ax.set_title("2. ratios to wasmtime serve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, to check that everything works")
    ap.add_argument("--only", default="1,2,3,4", help="sections to run, e.g. 2,3")
    ap.add_argument("--runs", type=int, help="runs per measurement (default 3; cold start 10 for hello)")
    ap.add_argument("--http-guests", default=",".join(sections.HTTP_GROUPS),
                    help="guests of section 2, from: " + ", ".join(sections.HTTP_GROUPS))
    ap.add_argument("--cold-guests", default="hello,js-hello,py-hello", help="guests of section 3")
    ap.add_argument("--out", type=Path, default=BENCHES / "results")
    args, argv = ap.parse_args(), sys.argv[1:]
    only = {int(s) for s in args.only.split(",") if s}
    tools = tool_paths()
    missing = [f"{k} ({p})" for k, p in tools.items() if not Path(p).exists()]
    if missing:
        sys.exit(f"report.py: missing {', '.join(missing)}; run benches/run, which builds and installs them")

    scratch = Path(tempfile.mkdtemp(prefix="wisp-bench-"))
    env = dict(os.environ)
    env["WISP_LOG"] = "warn"  # access logs are info level; they would dominate
    env["WISP_CACHE_DIR"] = str(scratch / "wisp-cache")
    envinfo = environment(tools, env, argv)
    print("## Environment\n")
    for k, v in envinfo.items():
        print(f"- {k}: {v}")
    print(flush=True)

    runs = args.runs or (1 if args.quick else 3)
    res = {"inprocess": [], "inprocess_derived": [], "http": {}, "cold": {}, "density": None}
    started = time.monotonic()
    ctx = sections.Context(tools=tools, env=env, scratch=scratch, quick=args.quick, runs=runs, log=log)
    try:
        if 1 in only:
            res["inprocess"], res["inprocess_derived"] = sections.inprocess(ctx)
        if 2 in only:
            res["http"] = sections.http(ctx, [g for g in args.http_guests.split(",") if g])
        if 3 in only:
            # JS and Python components compile for tens of seconds with a
            # fresh cache: fewer runs of those.
            res["cold"] = sections.cold_start(ctx, {
                g: args.runs or (1 if args.quick else 10 if g == "hello" else 3)
                for g in args.cold_guests.split(",") if g})
        if 4 in only:
            res["density"] = asyncio.run(sections.density(ctx))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started

    agg = http_agg(res)
    rows = inprocess_rows(res) + http_rows(agg) + cold_rows(res) + density_rows(res)
    text = table(rows)
    print("## Results\n")
    print(text)
    print(f"\n(benchmark sections took {elapsed / 60:.1f} min)")

    args.out.mkdir(parents=True, exist_ok=True)
    env_md = "\n".join(f"- {k}: {v}" for k, v in envinfo.items())
    (args.out / "latest.md").write_text(
        f"# Wisp benchmark results\n\n## Environment\n\n{env_md}\n\n## Results\n\n{text}\n\n"
        f"Sections took {elapsed / 60:.1f} min. Chart: chart.png.\n")
    (args.out / "latest.json").write_text(json.dumps({"environment": envinfo, "results": res}, indent=1))
    chart(res, agg, args.out / "chart.png")
    log(f"wrote {args.out / 'latest.md'} and {args.out / 'chart.png'}")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs every Wisp benchmark section and prints one table.

Called by `benches/run`, which builds the binaries and installs the peers
first. Sections:

  1. in-process cost per invocation (the `inprocess` binary);
  2. HTTP throughput and latency: Wisp, `wasmtime serve`, native hyper,
     same guest, same wrk load, interleaved runs;
  3. cold start: process spawn to first 200, fresh and warm artifact cache;
  4. density: resident memory with N sleeping invocations in flight;
  5. noisy neighbours: hello beside spinning, memory-bombing and CPU-heavy
     functions, in one Wisp process vs one `wasmtime serve` per function;
  6. events: CloudEvents published over the admin API, delivered to and
     acknowledged by a no-op event function with a durable store
     (events.py): events/s end to end, publish → ack latency, fsyncs/event;
  7. task queues: tasks added over the admin API and completed by a queue's
     function (tasks.py): tasks/s at an unlimited rate, and the observed
     dispatch rate against the configured one at 5, 50 and 500 per second;
  8. key-value: get/set/increment latency timed inside a guest, embedded
     (SQLite) store against a local `redis-server` (keyvalue.py).

Every figure is the median of several runs. The machine is shared and
noisy, so the ratios between servers measured in the same run are the
numbers to trust, not the absolute ones. Writes results/latest.md,
results/latest.json and results/chart.png next to this file.
"""

import argparse
import asyncio
import collections
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

import events
import keyvalue
import sections
import tasks

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/wisp/target"))
TOOLS = Path.home() / ".cache/wisp/tools/bin"


def tool_paths():
    return {
        "wisp": TARGET / "release/wisp",
        "inprocess": TARGET / "release/inprocess",
        "hyper": TARGET / "release/hyper-hello",
        "events-load": TARGET / "release/events-load",
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
        **({"base wisp": f"{tools['wisp-base']}: {first_line([tools['wisp-base'], '--version'])}"}
           if "wisp-base" in tools else {}),
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


# Wisp/wasmtime serve req/s each guest must reach, fresh instance per
# request (issue 18's targets table).
HTTP_TARGETS = {"hello": 3.0, "js-hello": 3.0, "py-hello": 2.0}


def http_agg(res):
    """{guest: {server: {rps, p50_ms, p99_ms, cpu_us, faults, errors, runs}}}, medians of
    runs (cpu_us and faults: the server's, per request; None without perf)."""
    return {guest: {name: {**{k: med(r.get(k) for r in runs)
                              for k in ("rps", "p50_ms", "p99_ms", "cpu_us", "faults")},
                           "errors": sum(r["errors"] for r in runs), "runs": len(runs)}
                    for name, runs in servers.items()}
            for guest, servers in res["http"].items()}


def http_rows(agg, base=None):
    rows = []
    for guest, servers in agg.items():
        section = f"2 HTTP {guest}"
        for name, a in servers.items():
            rows.append((section, f"{name} ({a['runs']} runs)",
                         f"{fmt(a['rps'], ' req/s')}, p50 {fmt(a['p50_ms'], ' ms')}, "
                         f"p99 {fmt(a['p99_ms'], ' ms')}"
                         + (f", {a['errors']} errors" if a["errors"] else "")
                         + (f"; per request {fmt(a['cpu_us'], ' µs')} CPU, {fmt(a['faults'])} page faults"
                            if a["cpu_us"] is not None else ""), ""))
        wt = servers.get("wasmtime serve")
        for name, a in servers.items():
            if not name.startswith("Wisp") or not wt or not wt["rps"] or not a["rps"]:
                continue
            ratio, p99 = a["rps"] / wt["rps"], a["p99_ms"] / wt["p99_ms"]
            target = ""
            if "@" not in name and (want := HTTP_TARGETS.get(guest)) is not None:
                ok = ratio >= want and (guest != "hello" or p99 < 1)
                target = f"≥ {want:.0f}× req/s{', lower p99' if guest == 'hello' else ''}: {verdict(ok)}"
            cpu = a["cpu_us"] / wt["cpu_us"] if a["cpu_us"] and wt["cpu_us"] else None
            rows.append((section, f"{name} / wasmtime serve",
                         f"{fmt(ratio, '×')} req/s, p99 {fmt(p99, '×')}"
                         + (f", CPU per request {fmt(cpu, '×')}" if cpu is not None else ""), target))
        for name, a, b in base_pairs(servers, base):
            if a["rps"] and b["rps"]:
                rows.append((section, f"{name} / {sections.base_name(base, name)}",
                             f"{fmt(a['rps'] / b['rps'], '×', 2)} req/s, "
                             f"p99 {fmt(a['p99_ms'] / b['p99_ms'], '×', 2)}", "this tree over the base"))
        hy, wisp = servers.get("native hyper"), servers.get("Wisp")
        if wisp and hy and hy["rps"]:
            rows.append((section, "Wisp / native hyper",
                         f"{fmt(wisp['rps'] / hy['rps'], '×', 2)} req/s, "
                         f"p99 {fmt(wisp['p99_ms'] / hy['p99_ms'], '×')}", "ceiling"))
    return rows


def base_pairs(results, base):
    """(name, this tree's figures, the base commit's) for each Wisp variant
    that has a twin run by the base commit's binary."""
    if not base:
        return []
    return [(name, a, results[sections.base_name(base, name)]) for name, a in results.items()
            if name.startswith("Wisp") and sections.base_name(base, name) in results]


# Wisp/wasmtime serve spawn → first 200 time each guest must stay under
# (issue 18), per cache state.
COLD_TARGETS = {"hello": {"warm cache": 1.0, "fresh cache": 1.5}}


def cold_ratios(guest, variants):
    """[(cache state, Wisp / wasmtime serve median time, target or None)]."""
    out = []
    for state in ("warm cache", "fresh cache"):
        wisp, wt = med(variants.get(f"Wisp, {state}", [])), med(variants.get(f"wasmtime serve, {state}", []))
        if wisp and wt:
            out.append((state, wisp / wt, COLD_TARGETS.get(guest, {}).get(state)))
    return out


def cold_rows(res):
    rows = []
    base = res.get("base")
    for guest, variants in res["cold"].items():
        for key, runs in variants.items():
            ms = med(runs)
            target = ""
            if guest == "hello" and key == "Wisp, warm cache":
                target = f"≤ 20 ms: {verdict(ms is not None and ms <= 20)}"
            rows.append((f"3 cold start {guest}", key,
                         f"{fmt(ms, ' ms')} (min {fmt(min(runs, default=None), ' ms')}, "
                         f"{len(runs)} runs)", target))
        for state, ratio, want in cold_ratios(guest, variants):
            rows.append((f"3 cold start {guest}", f"Wisp / wasmtime serve, {state}", f"{fmt(ratio, '×', 2)} the time",
                         f"≤ {want:g}×: {verdict(ratio <= want)}" if want is not None else ""))
        for name, a, b in base_pairs(variants, base):
            if med(a) and med(b):
                rows.append((f"3 cold start {guest}", f"{name} / {sections.base_name(base, name)}",
                             f"{fmt(med(a) / med(b), '×', 2)} the time", "this tree over the base"))
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


# Section 5 targets for Wisp (the noisy-neighbour issue): hello's req/s
# beside the load as a share of its req/s alone, and a p99 ceiling in ms.
NOISY_TARGETS = {"spinners": (0.5, 10.0), "bombs": (0.8, None)}
NOISY_LABELS = {key: label for key, label, _ in sections.NOISY_SITUATIONS}
NOISY_LOADS = {key: bg[0] for key, _, bg in sections.NOISY_SITUATIONS if bg}


def noisy_agg(res):
    """{setup: {situation: figures}}: medians of runs for hello and for the
    background clients' rates, sums of counts."""
    agg = {}
    for setup, situations in (res.get("noisy") or {}).items():
        agg[setup] = {}
        for key, runs in situations.items():
            if not runs:
                continue
            bgs = [r["background"] for r in runs if r.get("background")]
            statuses = collections.Counter()
            for b in bgs:
                statuses.update(b["statuses"])
            agg[setup][key] = {
                **{k: med(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms")},
                "errors": sum(r["errors"] or 0 for r in runs),
                "wrk_failed": sum(1 for r in runs if r.get("wrk_error")),
                "runs": len(runs),
                "bg_ok_per_s": med(b["ok_per_s"] for b in bgs),
                "bg_answered_per_s": med(b["answered_per_s"] for b in bgs),
                "bg_statuses": dict(sorted(statuses.items())),
                "bg_failures": sum(b["failures"] for b in bgs),
                "in_flight": med(r.get("in_flight") for r in runs),
            }
    return agg


def noisy_ratio(setup_agg, key):
    """hello's req/s in situation `key` over its req/s alone, same setup."""
    a, alone = setup_agg.get(key), setup_agg.get("alone")
    if not a or not alone or not alone["rps"] or a["rps"] is None:
        return None
    return a["rps"] / alone["rps"]


def noisy_target(key, a, ratio):
    if (want := NOISY_TARGETS.get(key)) is None:
        return ""
    share, p99 = want
    ok = ratio is not None and ratio >= share and (p99 is None or (a["p99_ms"] is not None and a["p99_ms"] <= p99))
    return f"≥ {share:.0%} of alone{f', p99 ≤ {p99:g} ms' if p99 else ''}: {verdict(ok)}"


def noisy_hello(a, ratio):
    text = f"{fmt(a['rps'], ' req/s')}, p50 {fmt(a['p50_ms'], ' ms')}, p99 {fmt(a['p99_ms'], ' ms')}"
    if ratio is not None:
        text += f"; {fmt(ratio, '×', 2)} alone"
    if a["errors"]:
        text += f", {a['errors']:,} errors"
    if a["wrk_failed"]:
        text += f", wrk gave no figures in {a['wrk_failed']}/{a['runs']} runs"
    return text


def noisy_background(key, a):
    """What the background clients got during the wrk run."""
    if (fn := NOISY_LOADS.get(key)) is None:
        return ""
    if key == "burners":
        parts = [f"burn: {fmt(a['bg_ok_per_s'])} completed/s"]
    else:
        parts = [f"{fn}: {fmt(a['bg_answered_per_s'])} answers/s"]
    if a["bg_statuses"]:
        parts.append("status " + ", ".join(f"{k} ×{v:,}" for k, v in a["bg_statuses"].items()))
    if a["in_flight"] is not None:
        parts.append(f"{a['in_flight']:.0f} in flight at start")
    if a["bg_failures"]:
        parts.append(f"{a['bg_failures']:,} failed")
    return "; ".join(parts)


def noisy_burn(agg):
    """(Wisp, wasmtime serve) burn completions/s beside hello."""
    get = lambda setup: agg.get(setup, {}).get("burners", {}).get("bg_ok_per_s")  # noqa: E731
    return get("Wisp"), get("wasmtime serve")


def noisy_rows(agg):
    rows = []
    for setup, situations in agg.items():
        for key, a in situations.items():
            ratio = noisy_ratio(situations, key)
            notes = [noisy_target(key, a, ratio) if setup == "Wisp" else "", noisy_background(key, a)]
            rows.append(("5 noisy neighbours", f"{setup}: {NOISY_LABELS[key]} ({a['runs']} runs)",
                         noisy_hello(a, ratio), "; ".join(n for n in notes if n)))
    wisp, wt = noisy_burn(agg)
    if wisp is not None and wt:
        rows.append(("5 noisy neighbours", "burn completed/s beside hello: Wisp / wasmtime serve",
                     f"{fmt(wisp)}/s vs {fmt(wt)}/s: {fmt(wisp / wt, '×', 2)}", "reported"))
    return rows


def noisy_tables(agg):
    """Section 5 per setup: one table each, the targets beside Wisp's figures."""
    if not agg:
        return ""
    titles = {"Wisp": "Wisp: one `wisp up` process serving all four functions",
              "wasmtime serve": "wasmtime serve: one process per function (what the kernel gives for free)"}
    out = ["## 5. Noisy neighbours: hello under `wrk -t1 -c8`"]
    for setup, situations in agg.items():
        target = setup == "Wisp"
        out += ["", f"### {titles.get(setup, setup)}", "",
                "| situation | hello req/s | hello p50 | hello p99 | req/s ÷ alone | background |"
                + (" target |" if target else ""),
                "|---|---|---|---|---|---|" + ("---|" if target else "")]
        for key, a in situations.items():
            ratio = noisy_ratio(situations, key)
            cells = [NOISY_LABELS[key],
                     fmt(a["rps"]) + (f" ({a['errors']:,} errors)" if a["errors"] else ""),
                     fmt(a["p50_ms"], " ms"), fmt(a["p99_ms"], " ms"),
                     fmt(ratio, "×", 2) if ratio is not None else "n/a", noisy_background(key, a)]
            if target:
                cells.append(noisy_target(key, a, ratio))
            out.append(f"| {' | '.join(cells)} |")
    wisp, wt = noisy_burn(agg)
    if wisp is not None or wt is not None:
        out += ["", f"burn?ms=50 completed per second beside hello: Wisp {fmt(wisp)}, "
                    f"wasmtime serve {fmt(wt)}"
                    + (f" (Wisp / wasmtime serve {fmt(wisp / wt, '×', 2)})" if wisp is not None and wt else "")]
    return "\n".join(out)


def table(rows):
    out = ["| section | measurement | result | target / note |", "|---|---|---|---|"]
    out += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(out)


def server_color(name):
    return "C9" if name.startswith("Wisp@") else "C2" if name.startswith("Wisp") else \
        "C7" if name == "native hyper" else "C1"


def chart_ratios(res, agg):
    """[(label, ratio, target or None, "≥" or "≤")]: every same-run ratio the
    chart shows, with the target the table judges it by."""
    base, out = res.get("base"), []
    for guest, servers in agg.items():
        wt = servers.get("wasmtime serve", {}).get("rps")
        for name, a in servers.items():
            if wt and name.startswith("Wisp") and a["rps"]:
                want = HTTP_TARGETS.get(guest) if "@" not in name else None
                out.append((f"{guest} req/s\n{name}\n/ wasmtime", a["rps"] / wt, want, "≥"))
        for name, a, b in base_pairs(servers, base):
            if a["rps"] and b["rps"]:
                out.append((f"{guest} req/s\n{name}\n/ @{base}", a["rps"] / b["rps"], None, "≥"))
    for guest, variants in res["cold"].items():
        for state, ratio, want in cold_ratios(guest, variants):
            out.append((f"{guest} start time\n{state}\n/ wasmtime", ratio, want, "≤"))
        for name, a, b in base_pairs(variants, base):
            if med(a) and med(b):
                out.append((f"{guest} start time\n{name[6:]}\n/ @{base}", med(a) / med(b), None, "≤"))
    return out


def chart(res, agg, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy = noisy_agg(res)
    fig, axes = plt.subplots(2, 4 if noisy else 3, figsize=(25 if noisy else 19, 10))
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
    bars = ax.bar(names, [hello[n]["rps"] or 0 for n in names], color=[server_color(n) for n in names])
    for bar, n in zip(bars, names):
        ax.annotate(f"{hello[n]['rps'] or 0:,.0f}/s\np99 {hello[n]['p99_ms'] or 0:.2f} ms",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("requests/s (median)")
    ax.set_title("2. HTTP, Rust hello, wrk -t2 -c16")

    ax = axes[0][2]
    bars_at = [(f"{g}\n{n}", a["rps"] or 0, server_color(n))
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
                   color=[server_color(k) for _, k in keys])
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
    ratios = chart_ratios(res, agg)
    if ratios:
        ax.bar(range(len(ratios)), [r[1] for r in ratios],
               color=["C9" if "/ @" in r[0] else "C2" if r[3] == "≥" else "C4" for r in ratios])
        ax.set_xticks(range(len(ratios)), [r[0] for r in ratios], fontsize=6)
        for i, (_, value, want, sense) in enumerate(ratios):
            ax.annotate(f"{value:.2f}×", (i, value), ha="center", va="bottom", fontsize=7)
            if want is not None:
                ax.hlines(want, i - 0.45, i + 0.45, color="red", lw=1.5, ls="--")
                ax.annotate(f"target {sense} {want:g}×", (i - 0.45, want), ha="left", va="bottom", fontsize=7,
                            color="red")
        ax.axhline(1, color="grey", lw=0.8)
    ax.set_ylabel("ratio, same run (req/s: higher is better; start time: lower)")
    ax.set_title("2-3. ratios against their targets (red dashes)")

    if noisy:
        keys = [k for k, _, _ in sections.NOISY_SITUATIONS]
        setups = [s for s in sections.NOISY_SETUPS if s in noisy]
        width = 0.8 / len(setups)
        nan = float("nan")
        for row, (field, ylabel, title) in enumerate([
                ("rps", "hello requests/s (median)", "5. noisy neighbours: hello req/s, wrk -t1 -c8"),
                ("p99_ms", "hello p99, ms (median, log)", "5. noisy neighbours: hello p99")]):
            ax = axes[row][3]
            for i, setup in enumerate(setups):
                vals = [(noisy[setup].get(k) or {}).get(field) for k in keys]
                xs = [j + (i - (len(setups) - 1) / 2) * width for j in range(len(keys))]
                bars = ax.bar(xs, [v if v is not None else nan for v in vals], width, label=setup,
                              color="C2" if setup == "Wisp" else "C1")
                for j, (bar, v) in enumerate(zip(bars, vals)):
                    if v is None:
                        continue
                    ratio = noisy_ratio(noisy[setup], keys[j]) if field == "rps" else None
                    label = f"{v:,.0f}" if field == "rps" else f"{v:.1f}"
                    if ratio is not None and keys[j] != "alone":
                        label += f"\n{ratio:.2f}×"
                    ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(keys)), [NOISY_LABELS[k].replace("beside ", "beside\n") for k in keys],
                          fontsize=7)
            if field == "p99_ms":
                ax.set_yscale("log")
                ax.axhline(10, color="grey", lw=0.8, ls="--", label="10 ms target (spinners)")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, to check that everything works")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8", help="sections to run, e.g. 2,3")
    ap.add_argument("--runs", type=int, help="runs per measurement (default 3; cold start 10 for hello)")
    ap.add_argument("--http-guests", default=",".join(sections.HTTP_GROUPS),
                    help="guests of section 2, from: " + ", ".join(sections.HTTP_GROUPS))
    ap.add_argument("--cold-guests", default="hello,js-hello,py-hello", help="guests of section 3")
    ap.add_argument("--out", type=Path, default=BENCHES / "results")
    ap.add_argument("--base-wisp", type=Path,
                    help="a `wisp` binary of another commit, run beside Wisp in sections 2 and 3 "
                         "(benches/run --compare BASE builds it)")
    ap.add_argument("--base-label", help="what to call --base-wisp in the table (default: its file name)")
    args, argv = ap.parse_args(), sys.argv[1:]
    only = {int(s) for s in args.only.split(",") if s}
    tools = tool_paths()
    base = None
    if args.base_wisp:
        tools["wisp-base"] = args.base_wisp
        base = args.base_label or args.base_wisp.name
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
    res = {"inprocess": [], "inprocess_derived": [], "http": {}, "cold": {}, "density": None, "noisy": {},
           "events": None, "tasks": None, "keyvalue": None, "base": base}
    started = time.monotonic()
    ctx = sections.Context(tools=tools, env=env, scratch=scratch, quick=args.quick, runs=runs, log=log,
                           base=base)
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
        if 5 in only:
            res["noisy"] = sections.noisy(ctx)
        if 6 in only:
            res["events"] = events.events(ctx)
        if 7 in only:
            res["tasks"] = tasks.tasks(ctx)
        if 8 in only:
            res["keyvalue"] = keyvalue.keyvalue(ctx)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started

    agg, noisy = http_agg(res), noisy_agg(res)
    rows = (inprocess_rows(res) + http_rows(agg, base) + cold_rows(res) + density_rows(res) + noisy_rows(noisy)
            + events.rows(res["events"]) + tasks.rows(res["tasks"]) + keyvalue.rows(res["keyvalue"]))
    text = table(rows)
    if tables := noisy_tables(noisy):
        text += "\n\n" + tables
    if tables := events.table(res["events"]):
        text += "\n\n" + tables
    if tables := tasks.table(res["tasks"]):
        text += "\n\n" + tables
    if tables := keyvalue.table(res["keyvalue"]):
        text += "\n\n" + tables
    print("## Results\n")
    print(text)
    print(f"\n(benchmark sections took {elapsed / 60:.1f} min)")

    write_results(args.out, "latest", "Wisp benchmark results", envinfo,
                  f"{text}\n\nSections took {elapsed / 60:.1f} min. Chart: chart.png.", res)
    chart(res, agg, args.out / "chart.png")
    log(f"wrote {args.out / 'chart.png'}")


def write_results(out, stem, title, envinfo, text, res):
    """`out/<stem>.md` (the environment, then `text`) and `out/<stem>.json`."""
    out.mkdir(parents=True, exist_ok=True)
    env_md = "\n".join(f"- {k}: {v}" for k, v in envinfo.items())
    (out / f"{stem}.md").write_text(f"# {title}\n\n## Environment\n\n{env_md}\n\n## Results\n\n{text}\n")
    (out / f"{stem}.json").write_text(json.dumps({"environment": envinfo, "results": res}, indent=1))
    log(f"wrote {out / (stem + '.md')}")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

"""Section 6: event-driven functions, end to end (issue 12's benchmark).

One `wisp up` per measurement, with a real state directory (the SQLite event
store in WAL mode, `synchronous = FULL`: every commit is an fsync), the admin
API on, a topic `bench`, and the `hello` guest subscribed to it as function
`noop`. hello answers 200 to any request, so every delivery is acknowledged
on its first attempt: a no-op Rust event function. The load comes from
`src/bin/events-load.rs` over the admin API:

- throughput: N binary-mode CloudEvents published over 16 keep-alive
  connections as fast as the `202`s come back, then `GET /metrics` every
  5 ms until `wisp_events_acked_total{topic="bench",function="noop"}` has
  grown by N. End-to-end events/s = N / (all acked − first publish sent).
  The server's access log is off (`WISP_LOG=warn`, as in every section).
  `wisp_event_store_commits_total` before and after (once the commit
  counter stops moving, so the settling of the last acks is counted) gives
  the store's commits per event; `perf stat` on the wisp process counts the
  fsync and fdatasync calls themselves over the same window.
- latency: one event every 10 ms (light load) over one connection; each
  event's id and the wall-clock time just before it was sent, joined with
  the `wisp::access` line Wisp logs when the delivery is over (the function
  answered 2xx: acknowledged). The access log is on for this server only
  (`WISP_LOG=warn,wisp::access=info`); both clocks are this machine's.

Both for `max_in_flight = 1` and `16` on the subscription; every measurement
starts its server afresh with an empty store.
"""

import calendar
import dataclasses
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from sections import PerfStat, Server, admin_token, free_port

TOPIC, FUNCTION, GUEST = "bench", "noop", "hello"
IN_FLIGHT = [1, 16]
PUBLISHERS = 16
INTERVAL_MS = 10.0
TARGET_RATE = 5000          # events/s end to end
TARGET_P50_MS = 5.0         # publish → ack at light load
ACCESS_LOG = "warn,wisp::access=info"
# More CPU than this taken by other processes during a flat-out run is
# called out next to the figure: the two cores were not Wisp's.
BUSY_CORES = 0.25


def sizes(ctx):
    """(throughput events, warm-up events, latency events)."""
    return (3000, 300, 100) if ctx.quick else (50000, 1000, 1000)


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds():
    """CPU time all cores spent not idle so far (/proc/stat), in seconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    # guest and guest_nice are already counted in user and nice.
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def manifest(ctx, port, admin, state, in_flight):
    text = f"""[server]
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin}"
state_dir = {json.dumps(str(state))}
shutdown_grace = "1s"

[[topic]]
name = "{TOPIC}"

# No route: an event function only; deliveries are POST / to it.
[[function]]
name = "{FUNCTION}"
component = {json.dumps(str(ctx.tools['guests'] / f'{GUEST}.wasm'))}
[function.trigger]
topic = "{TOPIC}"
max_in_flight = {in_flight}
"""
    path = ctx.scratch / f"events-{port}.toml"
    path.write_text(text)
    return path


class EventsServer:
    """A `wisp up` serving the bench topic and function, with its own state
    directory; `log_level` is its WISP_LOG."""

    def __init__(self, ctx, in_flight, log_level):
        self.ctx, self.in_flight = ctx, in_flight
        port, self.admin = free_port(), free_port()
        self.state = ctx.scratch / f"events-state-{port}"
        argv = [ctx.tools["wisp"], "up", "-f", manifest(ctx, port, self.admin, self.state, in_flight)]
        sctx = dataclasses.replace(ctx, env={**ctx.env, "WISP_LOG": log_level})
        # No HTTP function to probe: an accepted connection, then the load
        # generator waits until the subscription shows in the metrics.
        self.server = Server(ctx=sctx, name=f"events-{in_flight}", argv=argv, port=port, probe=None)
        self.token = None

    def __enter__(self):
        self.server.start()
        try:
            self.token = admin_token(self.ctx, self.state)
            self.load("wait", timeout=180)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.server.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    @property
    def pid(self):
        return self.server.proc.pid

    @property
    def log_path(self):
        return self.server.log_path

    def load(self, mode, *args, id_prefix="bench", timeout=600):
        argv = [str(self.ctx.tools["events-load"]), "--admin", f"127.0.0.1:{self.admin}",
                "--topic", TOPIC, "--function", FUNCTION, "--id-prefix", id_prefix, mode, *map(str, args)]
        out = subprocess.run(argv, env={**self.ctx.env, "WISP_ADMIN_TOKEN": self.token},
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"events-load {mode} failed:\n{out.stderr[-3000:]}\n"
                               f"server log:\n{tail(self.log_path)}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class SyncCounter(PerfStat):
    """fsync + fdatasync calls of one process, counted by `perf stat` on the
    syscall tracepoints while in the `with` block; `count` None without perf."""

    EVENTS = ["syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync"]

    def __init__(self, ctx, pid):
        super().__init__(ctx, pid, self.EVENTS)
        self.count = None

    def __exit__(self, *exc):
        super().__exit__(*exc)
        if self.counts is not None:
            self.count = int(sum(self.counts.values()))
            self.by_call = {k.rsplit("_", 1)[1]: int(v) for k, v in self.counts.items()}


def disk_sync_ms(directory, n=200):
    """The disk's own price: p50 and p99 of appending 4 KiB to a file and
    fsync-ing it, in `directory` (where the event store lives), as SQLite
    appends a commit's frames to its WAL and fsyncs it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for i in range(n):
            os.pwrite(fd, os.urandom(4096), i * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return {"p50_ms": nearest_rank(times, 50), "p99_ms": nearest_rank(times, 99)}


def filesystem(path):
    """The type and device of the filesystem holding `path`."""
    path = Path(path).resolve()
    best = ("?", "?", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mnt, fstype, *_ = line.split()
        if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[2]):
            best = (fstype, dev, mnt)
    return f"{best[0]} on {best[1]}"


def nearest_rank(sorted_values, p):
    """As wisp_benches::percentile: always one of the values."""
    if not sorted_values:
        return None
    rank = -(-p * len(sorted_values) // 100)
    return sorted_values[min(max(int(rank), 1), len(sorted_values)) - 1]


ACCESS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z\s+INFO wisp::access: "
                    r"event (\S+) attempt (\d+): (\d+)\b.*?duration_ms=([\d.]+)")


def access_acks(log_path):
    """{event id: (unix ns of the first 2xx delivery's log line, its
    duration_ms)} from the server's access log."""
    acks = {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = ACCESS.match(line)
        if not m:
            continue
        base, frac, event, _attempt, status, duration = m.groups()
        if not 200 <= int(status) < 300 or event in acks:
            continue
        secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        ns = secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
        acks[event] = (ns, float(duration))
    return acks


def latency_of(sent, acks):
    """Per-event figures (ms) of a latency run: publish → ack, publish →
    202, publish → delivery start (ack − the delivery's duration), and the
    delivery itself."""
    total, accepted, start, inside, missing = [], [], [], [], 0
    for event, sent_ns, accepted_ns in sent:
        if event not in acks:
            missing += 1
            continue
        ack_ns, duration_ms = acks[event]
        total.append((ack_ns - sent_ns) / 1e6)
        accepted.append((accepted_ns - sent_ns) / 1e6)
        start.append((ack_ns - sent_ns) / 1e6 - duration_ms)
        inside.append(duration_ms)
    out = {"events": len(sent), "missing": missing}
    for name, values in (("latency", total), ("publish", accepted), ("to_start", start), ("delivery", inside)):
        values.sort()
        out[f"{name}_p50_ms"] = nearest_rank(values, 50)
        out[f"{name}_p99_ms"] = nearest_rank(values, 99)
    return out


def throughput_once(ctx, in_flight, run):
    n, warm, _ = sizes(ctx)
    with EventsServer(ctx, in_flight, "warn") as s:
        # Compiled code faulted in, the subscription's slow-start window
        # opened to max_in_flight.
        s.load("throughput", "--events", warm, "--connections", PUBLISHERS, id_prefix=f"warm-{run}")
        with SyncCounter(ctx, s.pid) as syncs:
            wisp_cpu, load_cpu, busy = cpu_seconds(s.pid), children_cpu_seconds(), machine_busy_seconds()
            r = s.load("throughput", "--events", n, "--connections", PUBLISHERS, id_prefix=f"tp-{run}")
            r["wisp_cpu_s"] = cpu_seconds(s.pid) - wisp_cpu
            r["load_cpu_s"] = children_cpu_seconds() - load_cpu
            # Everything else on the machine (perf's counting included): a
            # busy neighbour shows here, not silently in the figures.
            r["other_cpu_s"] = max(0.0, machine_busy_seconds() - busy - r["wisp_cpu_s"] - r["load_cpu_s"])
        # Where the two cores went: Wisp's CPU time per event, and the
        # share of the machine the load generator took.
        r["wisp_cpu_us_per_event"] = r["wisp_cpu_s"] / n * 1e6
        r["fsyncs"] = syncs.count
        r["fsyncs_per_event"] = syncs.count / n if syncs.count is not None else None
        r["fsyncs_by_call"] = getattr(syncs, "by_call", None)
        if syncs.error:
            r["fsyncs_error"] = syncs.error
            ctx.log(f"6 events: could not count fsyncs: {syncs.error}")
    return r


def latency_once(ctx, in_flight, run):
    _, _, k = sizes(ctx)
    with EventsServer(ctx, in_flight, ACCESS_LOG) as s:
        s.load("latency", "--events", 20, "--interval-ms", INTERVAL_MS, id_prefix=f"lwarm-{run}")
        with SyncCounter(ctx, s.pid) as syncs:
            wisp_cpu, load_cpu, busy = cpu_seconds(s.pid), children_cpu_seconds(), machine_busy_seconds()
            t0 = time.perf_counter()
            r = s.load("latency", "--events", k, "--interval-ms", INTERVAL_MS, id_prefix=f"lat-{run}")
            other = (machine_busy_seconds() - busy - (cpu_seconds(s.pid) - wisp_cpu)
                     - (children_cpu_seconds() - load_cpu))
            other_cores = max(0.0, other) / (time.perf_counter() - t0)
        # The last access lines are written before the acks are counted,
        # and stderr is unbuffered: the log is complete here.
        figures = latency_of(r.pop("sent"), access_acks(s.log_path))
    figures.update(interval_ms=r["interval_ms"], commits_per_event=r["commits_per_event"],
                   retried=r["retried"], other_cores=other_cores,
                   fsyncs_per_event=syncs.count / k if syncs.count is not None else None)
    return figures


def events(ctx):
    """{"throughput": {in_flight: [runs]}, "latency": {in_flight: [runs]},
    "disk": ...}; the in-flight settings take turns, like section 2's
    servers."""
    wasm = ctx.tools["guests"] / f"{GUEST}.wasm"
    if not wasm.exists():
        raise RuntimeError(f"{wasm} is missing; run scripts/build-guests")
    res = {"throughput": {str(k): [] for k in IN_FLIGHT}, "latency": {str(k): [] for k in IN_FLIGHT},
           "guest": GUEST, "publishers": PUBLISHERS, "interval_ms": INTERVAL_MS,
           "filesystem": filesystem(ctx.scratch), "disk": disk_sync_ms(ctx.scratch / "disk-probe")}
    ctx.log(f"6 events: state dirs on {res['filesystem']}; 4 KiB append + fsync p50 "
            f"{res['disk']['p50_ms']:.3f} ms, p99 {res['disk']['p99_ms']:.3f} ms")
    for run in range(ctx.runs):
        for k in IN_FLIGHT:
            r = throughput_once(ctx, k, run)
            ctx.log(f"6 events: run {run + 1}/{ctx.runs} max_in_flight {k}: {r['events']:,} events, "
                    f"end to end {r['end_to_end_rate']:,.0f}/s, published (202) {r['publish_rate']:,.0f}/s "
                    f"(p50 {r['publish_p50_ms']:.2f} ms, p99 {r['publish_p99_ms']:.2f} ms), "
                    f"{r['commits_per_event']:.3f} commits/event, "
                    + (f"{r['fsyncs_per_event']:.3f} fsyncs/event {r['fsyncs_by_call']}"
                       if r["fsyncs_per_event"] is not None else "fsyncs n/a")
                    + f"; Wisp CPU {r['wisp_cpu_us_per_event']:.0f} µs/event, load generator "
                    f"{r['load_cpu_s'] / r['end_to_end_seconds']:.2f} cores, rest of the machine "
                    f"{r['other_cpu_s'] / r['end_to_end_seconds']:.2f} cores"
                    + (f", {r['retried']} retried" if r["retried"] else ""))
            res["throughput"][str(k)].append(r)
            lat = latency_once(ctx, k, run)
            ctx.log(f"6 events: run {run + 1}/{ctx.runs} max_in_flight {k}: one event every "
                    f"{INTERVAL_MS:g} ms: publish → ack p50 {fmt_ms(lat['latency_p50_ms'])}, "
                    f"p99 {fmt_ms(lat['latency_p99_ms'])}; publish → 202 p50 {fmt_ms(lat['publish_p50_ms'])}; "
                    f"→ delivery start p50 {fmt_ms(lat['to_start_p50_ms'])}; delivery p50 "
                    f"{fmt_ms(lat['delivery_p50_ms'])}; {lat['commits_per_event']:.2f} commits/event, "
                    + (f"{lat['fsyncs_per_event']:.2f} fsyncs/event" if lat["fsyncs_per_event"] is not None
                       else "fsyncs n/a")
                    + f"; rest of the machine {lat['other_cores']:.2f} cores"
                    + (f"; {lat['missing']} events not in the access log" if lat["missing"] else ""))
            res["latency"][str(k)].append(lat)
    return res


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.3f} ms"


# --- summarising for report.py ----------------------------------------------------

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


def agg(res):
    """{in_flight: figures}: medians of runs."""
    if not res:
        return {}
    out = {}
    for k in res["throughput"]:
        tp, lat = res["throughput"][k], res["latency"].get(k, [])
        a = {"runs": len(tp), "lat_runs": len(lat)}
        for key in ("events", "end_to_end_rate", "publish_rate", "publish_p50_ms", "publish_p99_ms",
                    "commits_per_event", "fsyncs_per_event", "wisp_cpu_us_per_event"):
            a[key] = med(r.get(key) for r in tp)
        a["load_cores"] = med(r["load_cpu_s"] / r["end_to_end_seconds"] for r in tp if "load_cpu_s" in r)
        a["wisp_cores"] = med(r["wisp_cpu_s"] / r["end_to_end_seconds"] for r in tp if "wisp_cpu_s" in r)
        a["other_cores"] = med(r["other_cpu_s"] / r["end_to_end_seconds"] for r in tp if "other_cpu_s" in r)
        a["failed_deliveries"] = sum(r["retried"] + r["dead_lettered"] + r["dropped"] for r in tp)
        for key in ("latency_p50_ms", "latency_p99_ms", "publish_p50_ms", "to_start_p50_ms",
                    "delivery_p50_ms"):
            a[f"lat_{key}"] = med(r.get(key) for r in lat)
        a["lat_events"] = med(r["events"] for r in lat)
        a["lat_missing"] = sum(r["missing"] for r in lat)
        a["lat_commits_per_event"] = med(r.get("commits_per_event") for r in lat)
        a["lat_fsyncs_per_event"] = med(r.get("fsyncs_per_event") for r in lat)
        a["lat_other_cores"] = med(r.get("other_cores") for r in lat)
        out[k] = a
    return out


def rows(res):
    """Rows of report.py's main table."""
    figures = agg(res)
    if not figures:
        return []
    section = "6 events"
    out = []
    for k, a in figures.items():
        who = f"{res['guest']} handler as no-op event function, max_in_flight {k}"
        note = "" if not a["failed_deliveries"] else f"; {a['failed_deliveries']:,} failed deliveries"
        if a["other_cores"] is not None and a["other_cores"] > BUSY_CORES:
            note += f"; machine busy: other processes took {a['other_cores']:.2f} cores (median of runs)"
        out.append((section,
                    f"{who}: end to end (publish → delivered → acked), {fmt(a['events'], digits=0)} events "
                    f"from {res['publishers']} publishers ({a['runs']} runs)",
                    f"{fmt(a['end_to_end_rate'], ' events/s')}; publishes answered 202 at "
                    f"{fmt(a['publish_rate'], '/s')} (p50 {fmt(a['publish_p50_ms'], ' ms')}, "
                    f"p99 {fmt(a['publish_p99_ms'], ' ms')}){note}",
                    f"≥ {TARGET_RATE:,} events/s: "
                    f"{verdict(a['end_to_end_rate'] is not None and a['end_to_end_rate'] >= TARGET_RATE)}"))
        out.append((section, f"max_in_flight {k}: durability per event (store commits; fsync + fdatasync calls)",
                    f"flat out: {fmt(a['commits_per_event'], digits=3)} commits, "
                    f"{fmt(a['fsyncs_per_event'], digits=3)} fsyncs; light load: "
                    f"{fmt(a['lat_commits_per_event'], digits=2)} commits, "
                    f"{fmt(a['lat_fsyncs_per_event'], digits=2)} fsyncs",
                    "reported"))
        out.append((section, f"max_in_flight {k}: CPU while flat out",
                    f"Wisp {fmt(a['wisp_cpu_us_per_event'], ' µs')} per event "
                    f"({fmt(a['wisp_cores'], ' cores', 2)}); load generator {fmt(a['load_cores'], ' cores', 2)}; "
                    f"rest of the machine {fmt(a['other_cores'], ' cores', 2)}",
                    f"of {os.cpu_count()} cores"))
        p50 = a["lat_latency_p50_ms"]
        missing = f"; {a['lat_missing']:,} not in the access log" if a["lat_missing"] else ""
        if a["lat_other_cores"] is not None and a["lat_other_cores"] > BUSY_CORES:
            missing += f"; machine busy: other processes took {a['lat_other_cores']:.2f} cores (median of runs)"
        out.append((section,
                    f"max_in_flight {k}: publish → ack latency, one event every {res['interval_ms']:g} ms "
                    f"({fmt(a['lat_events'], digits=0)} events, {a['lat_runs']} runs)",
                    f"p50 {fmt(p50, ' ms')}, p99 {fmt(a['lat_latency_p99_ms'], ' ms')}; of which publish → 202 "
                    f"p50 {fmt(a['lat_publish_p50_ms'], ' ms')}, in the function p50 "
                    f"{fmt(a['lat_delivery_p50_ms'], ' ms')}{missing}",
                    f"p50 ≤ {TARGET_P50_MS:g} ms: {verdict(p50 is not None and p50 <= TARGET_P50_MS)}"))
    d = res["disk"]
    out.append((section, f"the disk: 4 KiB append + fsync in the state directory ({res['filesystem']})",
                f"p50 {fmt(d['p50_ms'], ' ms', 3)}, p99 {fmt(d['p99_ms'], ' ms', 3)}", "reference"))
    return out


def table(res):
    """Section 6's own tables, per max_in_flight: flat out, and at light load
    with where the time goes."""
    figures = agg(res)
    if not figures:
        return ""
    d = res["disk"]
    n = next(iter(figures.values()))
    out = [f"## 6. Events: `{res['guest']}` as a no-op event function on topic `{TOPIC}`, durable store",
           "",
           f"### Flat out: {fmt(n['events'], digits=0)} events from {res['publishers']} publishers "
           f"(keep-alive connections to the admin API)",
           "",
           "| max_in_flight | end-to-end events/s | publishes answered/s | publish p50 / p99 "
           "| commits / event | fsyncs / event | Wisp CPU / event | cores: Wisp / load generator / other processes "
           "| target |",
           "|---|---|---|---|---|---|---|---|---|"]
    for k, a in figures.items():
        ok = a["end_to_end_rate"] is not None and a["end_to_end_rate"] >= TARGET_RATE
        out.append(f"| {k} | {fmt(a['end_to_end_rate'])} | {fmt(a['publish_rate'])} "
                   f"| {fmt(a['publish_p50_ms'], ' ms')} / {fmt(a['publish_p99_ms'], ' ms')} "
                   f"| {fmt(a['commits_per_event'], digits=3)} | {fmt(a['fsyncs_per_event'], digits=3)} "
                   f"| {fmt(a['wisp_cpu_us_per_event'], ' µs')} | {fmt(a['wisp_cores'], digits=2)} / "
                   f"{fmt(a['load_cores'], digits=2)} / {fmt(a['other_cores'], digits=2)} "
                   f"| ≥ {TARGET_RATE:,} events/s: {verdict(ok)} |")
    out += ["", f"### Light load: one event every {res['interval_ms']:g} ms over one connection", "",
            "| max_in_flight | publish → ack p50 / p99 | publish → 202 p50 | publish → delivery start p50 "
            "| in the function p50 | commits / event | fsyncs / event | other processes' cores | target |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k, a in figures.items():
        p50 = a["lat_latency_p50_ms"]
        ok = p50 is not None and p50 <= TARGET_P50_MS
        out.append(f"| {k} | {fmt(p50, ' ms')} / {fmt(a['lat_latency_p99_ms'], ' ms')} "
                   f"| {fmt(a['lat_publish_p50_ms'], ' ms')} | {fmt(a['lat_to_start_p50_ms'], ' ms')} "
                   f"| {fmt(a['lat_delivery_p50_ms'], ' ms')} | {fmt(a['lat_commits_per_event'], digits=2)} "
                   f"| {fmt(a['lat_fsyncs_per_event'], digits=2)} | {fmt(a['lat_other_cores'], digits=2)} "
                   f"| p50 ≤ {TARGET_P50_MS:g} ms: {verdict(ok)} |")
    out += ["", "Latency runs from just before the publish is sent to the access-log line Wisp writes "
                "when the delivery is acknowledged (the function answered 2xx); delivery start is that "
                "line's time less its `duration_ms`. Medians of runs. The disk "
                f"({res['filesystem']}): 4 KiB append + fsync p50 {fmt(d['p50_ms'], ' ms', 3)}, "
                f"p99 {fmt(d['p99_ms'], ' ms', 3)}."]
    return "\n".join(out)

"""Section 7: task queues (issue 13's benchmark).

One `wisp up` per measurement, with its own state directory (the SQLite task
store in WAL mode, `synchronous = FULL`), the admin API on, and one queue,
`bench`, whose function is the `hello` guest: it answers 200 to any request,
so every task completes on its first attempt. The load comes from
`src/bin/events-load.rs` (its `tasks` mode) over the admin API: tasks added
with `POST /v1/queues/bench/tasks` over 16 keep-alive connections as fast as
the `201`s come back, then `GET /v1/queues` every 5 ms until the queue's
`completed` counter has grown by that many.

- unlimited: `max_dispatches_per_second = 10000` (the most a queue may
  have), `max_burst = 10000`, `max_concurrent = 100`; tasks/s completed =
  N / (all completed − first add sent), and the adds' own rate. Then, on
  the same server, N more tasks added to the paused queue, which is then
  resumed: N / (resume → all completed) is the dispatcher's own rate, not
  bounded by how fast tasks arrive. The access log is off (`WISP_LOG=warn`,
  as in every section).
- rate accuracy: queues at 5, 50 and 500 dispatches per second with
  `max_burst = 1` (the bucket holds one token: nothing is front-loaded),
  given enough tasks for about 5 s of dispatching. The access log is on
  (`WISP_LOG=warn,wisp::access=info`): each attempt's line
  (`task bench/NAME attempt 1: 200`, timestamp first) gives its completion
  time, and the observed rate is (completions − 1) / (last − first
  completion); the same from the attempts' start times (completion less
  `duration_ms`) as a cross-check.

Every measurement starts its server afresh with an empty store.
"""

import calendar
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from events import (BUSY_CORES, SyncCounter, children_cpu_seconds, cpu_seconds, fmt, machine_busy_seconds, med,
                    tail, verdict)
from sections import Server, admin_token, free_port

QUEUE, GUEST = "bench", "hello"
ADDERS = 16                 # connections adding tasks
UNLIMITED = {"max_dispatches_per_second": 10000, "max_burst": 10000, "max_concurrent": 100}
RATES = [5, 50, 500]        # dispatches per second, with max_burst = 1
RATE_SECONDS = 5            # of dispatching per rate (quick: 2)
TOLERANCE = 0.05            # observed / configured within ±5%: met
ACCESS_LOG = "warn,wisp::access=info"


def sizes(ctx):
    """(unlimited: measured tasks, warm-up tasks)."""
    return (3000, 300) if ctx.quick else (50000, 1000)


def rate_tasks(ctx, rate):
    """Tasks for about RATE_SECONDS of dispatching at `rate`, first included:
    25 / 250 / 2,500 (quick: 10 / 100 / 1,000)."""
    return int(rate * (2 if ctx.quick else RATE_SECONDS))


def manifest(ctx, port, admin, state, settings):
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    text = f"""[server]
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin}"
state_dir = {json.dumps(str(state))}
shutdown_grace = "1s"

[[queue]]
name = "{QUEUE}"
function = "{GUEST}"
{keys}
# Tasks are POSTed to its route.
[[function]]
name = "{GUEST}"
component = {json.dumps(str(ctx.tools['guests'] / f'{GUEST}.wasm'))}
route = "/"
"""
    path = ctx.scratch / f"tasks-{port}.toml"
    path.write_text(text)
    return path


class TasksServer:
    """A `wisp up` serving the bench queue, with its own state directory;
    `log_level` is its WISP_LOG."""

    def __init__(self, ctx, settings, log_level):
        self.ctx, self.settings, self.log_level = ctx, settings, log_level
        self.server, self.token = None, None

    def _server(self):
        port, self.admin = free_port(), free_port()
        self.state = self.ctx.scratch / f"tasks-state-{port}"
        argv = [self.ctx.tools["wisp"], "up", "-f", manifest(self.ctx, port, self.admin, self.state, self.settings)]
        sctx = dataclasses.replace(self.ctx, env={**self.ctx.env, "WISP_LOG": self.log_level})
        return Server(ctx=sctx, name=f"tasks-{self.settings['max_dispatches_per_second']}", argv=argv,
                      port=port, probe="/")

    def __enter__(self):
        for attempt in range(3):
            self.server = self._server()
            try:
                self.server.start()
                break
            except RuntimeError as e:
                # A free port can be taken again before wisp binds it (the
                # load generator's connections use the same ephemeral range).
                shutil.rmtree(self.state, ignore_errors=True)
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                self.ctx.log("7 tasks: a port was taken meanwhile; starting again on others")
        try:
            self.token = admin_token(self.ctx, self.state)
            self.load("queue-wait", timeout=180)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.server:
            self.server.stop()
            shutil.rmtree(self.state, ignore_errors=True)

    @property
    def pid(self):
        return self.server.proc.pid

    def load(self, mode, *args, id_prefix="bench", timeout=600):
        argv = [str(self.ctx.tools["events-load"]), "--admin", f"127.0.0.1:{self.admin}",
                "--queue", QUEUE, "--id-prefix", id_prefix, mode, *map(str, args)]
        out = subprocess.run(argv, env={**self.ctx.env, "WISP_ADMIN_TOKEN": self.token},
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"events-load {mode} failed:\n{out.stderr[-3000:]}\n"
                               f"server log:\n{tail(self.server.log_path)}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def add(self, n, prefix, *flags, timeout=600):
        return self.load("tasks", "--tasks", n, "--connections", ADDERS, *flags, id_prefix=prefix,
                         timeout=timeout)


class Usage:
    """CPU taken while in the `with` block: by Wisp, by the load generator
    (this process's children), and by every other process on the machine."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.wisp, self.load, self.busy = cpu_seconds(self.pid), children_cpu_seconds(), machine_busy_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.wisp_s = cpu_seconds(self.pid) - self.wisp
        self.load_s = children_cpu_seconds() - self.load
        # perf-free, so this is everything else: a busy neighbour shows here.
        self.other_s = max(0.0, machine_busy_seconds() - self.busy - self.wisp_s - self.load_s)

    def cores(self):
        return {k: v / self.seconds for k, v in
                (("wisp_cores", self.wisp_s), ("load_cores", self.load_s), ("other_cores", self.other_s))}


def unlimited_once(ctx, run):
    n, warm = sizes(ctx)
    with TasksServer(ctx, UNLIMITED, "warn") as s:
        # Compiled code faulted in, the store's pages warm.
        s.add(warm, f"warm{run}")
        with SyncCounter(ctx, s.pid) as syncs:
            with Usage(s.pid) as usage:
                r = s.add(n, f"tp{run}")
        r.update(usage.cores())
        r["wisp_cpu_us_per_task"] = usage.wisp_s / n * 1e6
        # The task store's commits: one fsync each (synchronous = FULL).
        r["fsyncs_per_task"] = syncs.count / n if syncs.count is not None else None
        if syncs.error:
            r["fsyncs_error"] = syncs.error
            ctx.log(f"7 tasks: could not count fsyncs: {syncs.error}")
        # The dispatcher alone: N tasks stored while the queue is paused.
        paused = s.add(n, f"dr{run}", "--paused")
        r["drain_rate"], r["drain_seconds"] = paused["drain_rate"], paused["drain_seconds"]
        r["paused_not_first_time"] = paused["retried"] + paused["failed"]
    return r


ACCESS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z\s+INFO wisp::access: "
                    r"task ([^/\s]+)/(\S+) attempt (\d+): (\d+)\b.*?duration_ms=([\d.]+)")


def access_attempts(log_path, queue, prefix):
    """[(unix ns of the log line, duration_ms, attempt, status)] of the
    attempts of `queue`'s tasks named `{prefix}-…`, in log order."""
    out = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = ACCESS.match(line)
        if not m or m.group(3) != queue or not m.group(4).startswith(prefix + "-"):
            continue
        base, frac, _, _, attempt, status, duration = m.groups()
        secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        ns = secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
        out.append((ns, float(duration), int(attempt), int(status)))
    return out


def observed_rate(times_ns):
    """(count − 1) / (last − first), per second; None under two."""
    times_ns = sorted(times_ns)
    if len(times_ns) < 2 or times_ns[-1] == times_ns[0]:
        return None
    return (len(times_ns) - 1) / ((times_ns[-1] - times_ns[0]) / 1e9)


def rate_once(ctx, rate, run):
    n = rate_tasks(ctx, rate)
    settings = {"max_dispatches_per_second": rate, "max_burst": 1, "max_concurrent": 100}
    with TasksServer(ctx, settings, ACCESS_LOG) as s:
        # One task first: the code faulted in, so the first measured attempt
        # is not slower than the rest. The next add waits for its token.
        s.add(1, f"rwarm{run}")
        with Usage(s.pid) as usage:
            r = s.add(n, f"rate{run}", timeout=n / rate + 300)
        attempts = access_attempts(s.server.log_path, QUEUE, f"rate{run}")
    done = [a for a in attempts if a[3] == 200 and a[2] == 1]
    completions = [a[0] for a in done]
    starts = [a[0] - int(a[1] * 1e6) for a in done]
    r.update(usage.cores())
    r.update(rate=rate, logged=len(attempts), completed_first_attempt=len(done),
             observed_rate=observed_rate(completions), observed_rate_starts=observed_rate(starts),
             span_seconds=(max(completions) - min(completions)) / 1e9 if completions else None,
             duration_p50_ms=med(a[1] for a in done))
    r["ratio"] = r["observed_rate"] / rate if r["observed_rate"] else None
    return r


def tasks(ctx):
    """{"unlimited": [runs], "rates": {rate: [runs]}}; the unlimited queue
    and the rates take turns, like section 2's servers."""
    wasm = ctx.tools["guests"] / f"{GUEST}.wasm"
    if not wasm.exists():
        raise RuntimeError(f"{wasm} is missing; run scripts/build-guests")
    res = {"unlimited": [], "rates": {str(k): [] for k in RATES}, "guest": GUEST, "adders": ADDERS,
           "settings": UNLIMITED}
    for run in range(ctx.runs):
        r = unlimited_once(ctx, run)
        ctx.log(f"7 tasks: run {run + 1}/{ctx.runs} unlimited: {r['tasks']:,} tasks, "
                f"completed {r['end_to_end_rate']:,.0f}/s, added (201) {r['enqueue_rate']:,.0f}/s "
                f"(p50 {r['enqueue_p50_ms']:.2f} ms, p99 {r['enqueue_p99_ms']:.2f} ms); "
                f"from a paused queue {r['drain_rate']:,.0f}/s; "
                f"{fmt(r['fsyncs_per_task'], digits=3)} fsyncs/task; "
                f"Wisp CPU {r['wisp_cpu_us_per_task']:.0f} µs/task, {r['wisp_cores']:.2f} cores; "
                f"load generator {r['load_cores']:.2f} cores; other processes {r['other_cores']:.2f} cores"
                + (f"; {r['retried']} retried, {r['failed']} failed" if r["retried"] or r["failed"] else ""))
        res["unlimited"].append(r)
        for rate in RATES:
            r = rate_once(ctx, rate, run)
            ctx.log(f"7 tasks: run {run + 1}/{ctx.runs} {rate}/s, burst 1: {r['tasks']:,} tasks over "
                    f"{fmt(r['span_seconds'], ' s')}: observed {fmt(r['observed_rate'], '/s', 2)} "
                    f"({fmt(r['ratio'], '×', 3)}; from the start times {fmt(r['observed_rate_starts'], '/s', 2)}); "
                    f"{r['completed_first_attempt']:,}/{r['tasks']:,} in the access log; other processes "
                    f"{r['other_cores']:.2f} cores")
            res["rates"][str(rate)].append(r)
    return res


# --- summarising for report.py ----------------------------------------------------

def agg(res):
    """({unlimited figures}, {rate: figures}): medians of runs."""
    if not res:
        return None, {}
    tp = res["unlimited"]
    u = {"runs": len(tp)}
    for key in ("tasks", "end_to_end_rate", "enqueue_rate", "enqueue_p50_ms", "enqueue_p99_ms",
                "drain_rate", "fsyncs_per_task", "wisp_cpu_us_per_task", "wisp_cores", "load_cores", "other_cores"):
        u[key] = med(r.get(key) for r in tp)
    u["not_first_time"] = sum(r["retried"] + r["failed"] + r.get("paused_not_first_time", 0) for r in tp)
    rates = {}
    for rate, runs in res["rates"].items():
        a = {"runs": len(runs), "rate": float(rate)}
        for key in ("tasks", "observed_rate", "observed_rate_starts", "ratio", "span_seconds",
                    "other_cores", "duration_p50_ms"):
            a[key] = med(r.get(key) for r in runs)
        a["ratios"] = [r["ratio"] for r in runs]
        a["missing"] = sum(r["tasks"] - r["completed_first_attempt"] for r in runs)
        rates[rate] = a
    return u, rates


def met(ratio):
    return ratio is not None and abs(ratio - 1) <= TOLERANCE


def busy_note(cores):
    if cores is not None and cores > BUSY_CORES:
        return f"; machine busy: other processes took {cores:.2f} cores (median of runs)"
    return ""


def rows(res):
    """Rows of report.py's main table."""
    u, rates = agg(res)
    if not u:
        return []
    section = "7 task queues"
    s = res["settings"]
    out = [(section,
            f"{res['guest']} as the queue's function, unlimited ({s['max_dispatches_per_second']:,}/s, "
            f"burst {s['max_burst']:,}, {s['max_concurrent']} concurrent): {fmt(u['tasks'], digits=0)} tasks "
            f"added over {res['adders']} connections ({u['runs']} runs)",
            f"{fmt(u['end_to_end_rate'], ' tasks/s')} completed; added (201) at {fmt(u['enqueue_rate'], '/s')} "
            f"(p50 {fmt(u['enqueue_p50_ms'], ' ms')}, p99 {fmt(u['enqueue_p99_ms'], ' ms')})"
            + (f"; {u['not_first_time']:,} retried or failed" if u["not_first_time"] else "")
            + busy_note(u["other_cores"]),
            "reported"),
           (section, f"unlimited: {fmt(u['tasks'], digits=0)} tasks stored in the paused queue, then resumed",
            f"{fmt(u['drain_rate'], ' tasks/s')} completed (resume → all completed): the dispatcher alone",
            "reported"),
           (section, "unlimited: CPU and durability (tasks added and dispatched at once)",
            f"{fmt(u['fsyncs_per_task'], digits=3)} fsyncs per task; "
            f"Wisp {fmt(u['wisp_cpu_us_per_task'], ' µs')} per task ({fmt(u['wisp_cores'], ' cores', 2)}); "
            f"load generator {fmt(u['load_cores'], ' cores', 2)}; rest of the machine "
            f"{fmt(u['other_cores'], ' cores', 2)}",
            f"of {os.cpu_count()} cores")]
    for rate, a in rates.items():
        missing = f"; {a['missing']:,} not completed on their first attempt" if a["missing"] else ""
        out.append((section,
                    f"max_dispatches_per_second = {rate}, max_burst = 1: {fmt(a['tasks'], digits=0)} tasks "
                    f"({a['runs']} runs)",
                    f"observed {fmt(a['observed_rate'], '/s', 2)} = {fmt(a['ratio'], '×', 3)} the configured "
                    f"rate (runs: {', '.join(fmt(x, '×', 3) for x in a['ratios'])})"
                    + missing + busy_note(a["other_cores"]),
                    f"within ±{TOLERANCE:.0%}: {verdict(met(a['ratio']))}"))
    return out


def table(res):
    """Section 7's own table."""
    u, rates = agg(res)
    if not u:
        return ""
    s = res["settings"]
    out = [f"## 7. Task queues: `{res['guest']}` as the queue's function, durable store",
           "",
           f"### Unlimited: {s['max_dispatches_per_second']:,}/s, burst {s['max_burst']:,}, "
           f"{s['max_concurrent']} concurrent; {fmt(u['tasks'], digits=0)} tasks added over "
           f"{res['adders']} connections",
           "",
           "| tasks/s completed | added (201)/s | add p50 / p99 | fsyncs / task | Wisp CPU / task "
           "| cores: Wisp / load generator / other processes | from a paused queue, tasks/s |",
           "|---|---|---|---|---|---|---|",
           f"| {fmt(u['end_to_end_rate'])} | {fmt(u['enqueue_rate'])} "
           f"| {fmt(u['enqueue_p50_ms'], ' ms')} / {fmt(u['enqueue_p99_ms'], ' ms')} "
           f"| {fmt(u['fsyncs_per_task'], digits=3)} "
           f"| {fmt(u['wisp_cpu_us_per_task'], ' µs')} | {fmt(u['wisp_cores'], digits=2)} / "
           f"{fmt(u['load_cores'], digits=2)} / {fmt(u['other_cores'], digits=2)} "
           f"| {fmt(u['drain_rate'])} |",
           "",
           "Tasks/s completed runs from the first add sent to all completed (`GET /v1/queues` every 5 ms); "
           "from a paused queue, the same number of tasks is stored first and the rate runs from the resume.",
           "",
           "### Rate accuracy: max_burst = 1, dispatch rate from the access log's completion times",
           "",
           "| configured | tasks | observed (completions) | observed / configured | from start times "
           "| attempt p50 | other processes' cores | target |",
           "|---|---|---|---|---|---|---|---|"]
    for rate, a in rates.items():
        out.append(f"| {rate}/s | {fmt(a['tasks'], digits=0)} | {fmt(a['observed_rate'], '/s', 2)} "
                   f"| {fmt(a['ratio'], '×', 3)} | {fmt(a['observed_rate_starts'], '/s', 2)} "
                   f"| {fmt(a['duration_p50_ms'], ' ms', 2)} | {fmt(a['other_cores'], digits=2)} "
                   f"| ±{TOLERANCE:.0%}: {verdict(met(a['ratio']))} |")
    out += ["", "Observed rate = (completions − 1) ÷ (last − first completion), from the "
                "`task bench/NAME attempt 1: 200` lines of Wisp's access log; the start times are those "
                "lines' times less their `duration_ms`. Medians of runs."]
    return "\n".join(out)

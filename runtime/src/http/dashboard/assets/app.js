// The Wisp dashboard: polls the admin API every POLL_MS and renders charts
// (uPlot, vendored) and tables. No framework, no build step. Every value is
// written with textContent, never as HTML: log lines and names come from
// guests and manifests.
"use strict";

(() => {
  const TOKEN_KEY = "wisp-admin-token";
  const POLL_MS = 2000;
  const WINDOW = "1h";
  const RECENT = 20;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

  const $ = (id) => document.getElementById(id);
  const charts = {};
  let updates = 0;

  class Unauthorized extends Error {}

  // --- The token: from a `#token=` fragment (never sent to the server) or
  // the login form, kept in this tab's sessionStorage.

  function takeTokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get("token");
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("main").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("status").textContent = "signed out";
    $("token").focus();
  }

  async function api(path) {
    const resp = await fetch(path, {
      headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
      cache: "no-store",
    });
    let body;
    try {
      body = await resp.json();
    } catch {
      body = { error: resp.statusText };
    }
    if (resp.status === 401) throw new Unauthorized(body.error);
    if (!resp.ok) throw new Error(`${path}: ${resp.status} ${body.error}`);
    return body;
  }

  // --- Small DOM helpers.

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.dataset[key.slice(5)] = value;
      else node[key] = value;
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /// Replaces a table's rows; each row is [attributes, [cell, …]] where a
  /// cell is text, a Node, or [column name, text or Node].
  function fill(table, rows, empty) {
    const body = $(table).tBodies[0];
    const columns = $(table).tHead.rows[0].cells.length;
    if (rows.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { colSpan: columns, class: "empty" }, empty)));
      return;
    }
    body.replaceChildren(
      ...rows.map(([attrs, cells]) =>
        el("tr", attrs, ...cells.map((c) => (Array.isArray(c) ? el("td", { "data-col": c[0] }, c[1]) : el("td", {}, c))))
      )
    );
  }

  const dash = "—";
  const num = (n) => (n == null ? dash : String(n));
  const pct = (part, whole) => (whole ? ((100 * part) / whole).toFixed(1) + "%" : dash);
  function ms(v) {
    if (v == null) return dash;
    if (v < 1) return v.toFixed(2) + " ms";
    if (v < 100) return v.toFixed(1) + " ms";
    return Math.round(v) + " ms";
  }
  const mib = (bytes) => (bytes == null ? dash : (bytes / 1048576).toFixed(1) + " MiB");
  const gbs = (v) => (v == null ? dash : v.toPrecision(3));
  const clock = (time) => new Date(time).toLocaleTimeString();
  const statusClass = (status) => "status s" + String(status)[0];

  // --- Where the page is: `#function=NAME&invocation=ID`.

  function place() {
    const params = new URLSearchParams(location.hash.slice(1));
    return { fn: params.get("function"), invocation: params.get("invocation") };
  }

  function link(fn, invocation, text) {
    const params = new URLSearchParams({ function: fn });
    if (invocation) params.set("invocation", invocation);
    return el("a", { href: "#" + params.toString() }, text);
  }

  // --- Charts: one per measure, one series per function (two for latency).

  function ratio(parts, wholes) {
    return parts.map((p, i) => (wholes[i] ? (100 * p) / wholes[i] : null));
  }

  const MEASURES = {
    rate: { series: (f) => [["", f.invocations]] },
    errors: { series: (f) => [["", ratio(f.errors, f.invocations)]] },
    latency: {
      series: (f) => [
        [" p50", f.p50_ms],
        [" p99", f.p99_ms],
      ],
    },
    cold: { series: (f) => [["", ratio(f.cold, f.cold.map((c, i) => c + f.warm[i]))]] },
  };

  function drawCharts(series) {
    const key = series.functions.map((f) => f.name).join("\n");
    for (const [name, measure] of Object.entries(MEASURES)) {
      const figure = $("chart-" + name);
      const lines = [];
      const data = [series.minutes];
      series.functions.forEach((f, i) => {
        for (const [suffix, values] of measure.series(f)) {
          lines.push({
            label: f.name + suffix,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            dash: suffix === " p99" ? [6, 4] : undefined,
            points: { show: true, size: 5, fill: COLORS[i % COLORS.length] },
          });
          data.push(values);
        }
      });
      let chart = charts[name];
      if (chart && chart.key !== key) {
        chart.plot.destroy();
        chart = null;
      }
      if (!chart) {
        const plot = new uPlot(
          {
            width: Math.max(figure.clientWidth - 16, 200),
            height: 180,
            scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, name === "rate" ? 1 : 0.001) * 1.1] } },
            axes: [{}, { size: 56 }],
            legend: { live: false },
            series: [{}, ...lines],
          },
          data,
          figure
        );
        chart = charts[name] = { plot, key };
      } else {
        chart.plot.setData(data);
      }
      figure.dataset.series = String(lines.length);
    }
  }

  window.addEventListener("resize", () => {
    for (const [name, chart] of Object.entries(charts)) {
      chart.plot.setSize({ width: Math.max($("chart-" + name).clientWidth - 16, 200), height: 180 });
    }
  });

  // --- Tables.

  function drawFunctions(series, shown) {
    $("window").textContent = `last ${series.window_minutes} minutes, per minute`;
    fill(
      "functions",
      series.functions.map((f, i) => {
        const t = f.total;
        const swatch = el("span", { class: "swatch" });
        swatch.style.background = COLORS[i % COLORS.length];
        return [
          { "data-function": f.name, class: f.name === shown ? "selected" : "" },
          [
            ["name", el("span", {}, swatch, link(f.name, null, f.name))],
            ["status", f.status],
            ["revision", num(f.current_revision)],
            ["invocations", num(t.invocations)],
            ["errors", num(t.errors)],
            ["error-rate", pct(t.errors, t.invocations)],
            ["p50", ms(t.p50_ms)],
            ["p99", ms(t.p99_ms)],
            ["cold", pct(t.cold, t.cold + t.warm)],
          ],
        ];
      }),
      "no functions deployed"
    );
  }

  function drawDetail(fn, revisions, recent) {
    $("detail").hidden = !fn;
    if (!fn) return;
    $("detail-name").textContent = fn;
    fill(
      "revisions",
      revisions
        .slice()
        .reverse()
        .map((r) => [
          { "data-revision": r.number },
          [
            ["revision", String(r.number)],
            ["created", new Date(r.created * 1000).toLocaleString()],
            ["component", (r.spec.component || "").replace(/^sha256:/, "").slice(0, 12)],
            ["route", r.spec.route || dash],
          ],
        ]),
      "no revisions"
    );
    fill(
      "invocations",
      recent.lines
        .slice()
        .reverse()
        .map((l) => [
          { "data-invocation": l.invocation || "" },
          [
            ["time", clock(l.time)],
            ["invocation", l.invocation ? link(fn, l.invocation, l.invocation) : dash],
            ["trigger", l.trigger || dash],
            ["request", l.method ? `${l.method} ${l.path}` : l.line],
            ["status", el("span", { class: statusClass(l.status) }, num(l.status))],
            ["duration", ms(l.duration_ms)],
            ["cpu", l.cpu_ms == null ? dash : ms(l.cpu_ms)],
            ["memory", mib(l.peak_memory_bytes)],
            ["gb-s", gbs(l.gb_s)],
          ],
        ]),
      "no invocations kept"
    );
  }

  const logsPath = (fn, invocation) =>
    `/v1/functions/${encodeURIComponent(fn)}/logs?invocation=${encodeURIComponent(invocation)}`;

  function drawLogs(fn, invocation, page) {
    $("logs").hidden = !page;
    if (!page) return;
    $("logs-id").textContent = invocation;
    $("logs-api").textContent = "GET " + logsPath(fn, invocation);
    fill(
      "log-lines",
      page.lines.map((l) => [
        { "data-stream": l.stream },
        [
          ["time", clock(l.time)],
          ["stream", l.stream],
          ["line", el("code", {}, l.line)],
        ],
      ]),
      "no lines kept for this invocation"
    );
  }

  function drawTopics(topics) {
    const rows = [];
    for (const t of topics) {
      const subs = t.subscriptions.length ? t.subscriptions : [null];
      for (const s of subs) {
        rows.push([
          { "data-topic": t.name },
          [
            ["topic", t.name],
            ["published", num(t.published)],
            ["function", s ? s.function : dash],
            ["backlog", s ? num(s.backlog) : dash],
            ["in-flight", s ? num(s.in_flight) : dash],
            ["delivered", s ? num(s.delivered) : dash],
            ["retried", s ? num(s.retried) : dash],
            ["dead-lettered", s ? num(s.dead_lettered) : dash],
            ["oldest", s && s.oldest_unacked_age_ms != null ? (s.oldest_unacked_age_ms / 1000).toFixed(1) + " s" : dash],
          ],
        ]);
      }
    }
    fill("topics", rows, "no topics");
  }

  function drawQueues(queues) {
    fill(
      "queues",
      queues.map((q) => [
        { "data-queue": q.name },
        [
          ["queue", q.name],
          ["function", q.function],
          ["state", q.paused ? "paused" : "running"],
          ["waiting", num(q.waiting)],
          ["in-flight", num(q.in_flight)],
          ["dispatched", num(q.dispatched)],
          ["completed", num(q.completed)],
          ["retried", num(q.retried)],
          ["failed", num(q.failed)],
        ],
      ]),
      "no queues"
    );
  }

  function drawJobs(jobs, executions) {
    fill(
      "jobs",
      jobs.map((j, i) => {
        const list = executions[i];
        const count = (state) => String(list.filter((e) => e.state === state).length);
        const last = list.reduce((a, b) => (a && a.created >= b.created ? a : b), null);
        return [
          { "data-job": j.name },
          [
            ["job", j.name],
            ["tasks", num(j.tasks)],
            ["running", count("running")],
            ["succeeded", count("succeeded")],
            ["failed", count("failed")],
            ["cancelled", count("cancelled")],
            ["last", last ? `${last.state}, ${new Date(last.created).toLocaleString()}` : dash],
          ],
        ];
      }),
      "no jobs"
    );
  }

  // --- The poll loop: everything is fetched first, then drawn at once,
  // unless a newer refresh (the address changed) started meanwhile.

  let timer = null;
  let generation = 0;

  async function load() {
    const { fn, invocation } = place();
    const [series, topics, queues, jobs] = await Promise.all([
      api(`/v1/dashboard/series?window=${WINDOW}`),
      api("/v1/topics"),
      api("/v1/queues"),
      api("/v1/jobs"),
    ]);
    const shown = fn || (series.functions[0] && series.functions[0].name);
    const name = encodeURIComponent(shown);
    const [revisions, recent, logs, executions] = await Promise.all([
      shown ? api(`/v1/functions/${name}/revisions`) : null,
      shown ? api(`/v1/functions/${name}/logs?stream=access&limit=${RECENT}`) : null,
      fn && invocation ? api(logsPath(fn, invocation)) : null,
      Promise.all(jobs.map((j) => api(`/v1/jobs/${encodeURIComponent(j.name)}/executions`))),
    ]);
    return { series, topics, queues, jobs, fn, invocation, shown, revisions, recent, logs, executions };
  }

  function draw(d) {
    $("login").hidden = true;
    $("main").hidden = false;
    $("forget").hidden = false;
    drawFunctions(d.series, d.shown);
    drawCharts(d.series);
    drawDetail(d.shown, d.revisions, d.recent);
    drawLogs(d.fn, d.invocation, d.logs);
    drawTopics(d.topics);
    drawQueues(d.queues);
    drawJobs(d.jobs, d.executions);
    updates += 1;
    document.body.dataset.updates = String(updates);
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
    $("status").className = "";
  }

  async function refresh() {
    const mine = ++generation;
    clearTimeout(timer);
    try {
      const data = await load();
      if (mine !== generation) return;
      draw(data);
    } catch (e) {
      if (mine !== generation) return;
      if (e instanceof Unauthorized) {
        showLogin(e.message);
        return;
      }
      $("status").textContent = "update failed: " + e.message;
      $("status").className = "error";
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    generation += 1;
    clearTimeout(timer);
    showLogin("");
  });
  window.addEventListener("hashchange", () => {
    takeTokenFromFragment();
    if (sessionStorage.getItem(TOKEN_KEY)) refresh();
  });

  takeTokenFromFragment();
  if (sessionStorage.getItem(TOKEN_KEY)) refresh();
  else showLogin("");
})();

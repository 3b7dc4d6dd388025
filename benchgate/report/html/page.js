"use strict";
// Draws report.html from the JSON blob. Every string from the data goes in through textContent or an
// attribute value, never innerHTML: model outputs are untrusted.
(function () {
  const DATA = JSON.parse(document.getElementById("benchgate-data").textContent);
  const REPORT = DATA.report;
  const ITEMS = DATA.items;
  const HISTORY = DATA.history;
  const SECTIONS = REPORT.report || {};
  const DETAILS = REPORT.details || {};
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#4269d0", "#e8a10c", "#ff725c", "#3ca951", "#a463f2", "#6cc5b0", "#ff8ab7", "#9c6b4e"];
  const PAGE_SIZE = 50;
  const app = document.getElementById("app");

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function s(tag, attrs, parent, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.append(node);
    return node;
  }

  function unique(values) {
    return Array.from(new Set(values));
  }

  const TASKS = unique([...Object.keys(SECTIONS), ...Object.keys(DETAILS)]);
  const MODELS = unique(
    TASKS.flatMap((task) => [
      ...((SECTIONS[task] || {}).results || []).map((row) => row.model),
      ...Object.keys(DETAILS[task] || {}),
    ]),
  );
  const colour = (model) => PALETTE[Math.max(0, MODELS.indexOf(model)) % PALETTE.length];
  const swatch = (model) => h("span", { class: "swatch m" + (Math.max(0, MODELS.indexOf(model)) % 8) });

  function metricsOf(task) {
    const names = [];
    for (const detail of Object.values(DETAILS[task] || {})) names.push(...Object.keys(detail.metrics || {}));
    for (const row of (SECTIONS[task] || {}).results || []) {
      names.push(...Object.keys(row).filter((key) => key !== "model"));
    }
    return unique(names);
  }

  function scaleOf(task, metric) {
    for (const detail of Object.values(DETAILS[task] || {})) {
      if (detail.scales && detail.scales[metric]) return detail.scales[metric];
    }
    return "fraction";
  }

  // Percent metrics with one decimal, fractions with three: as report.md writes them.
  function fmt(value, scale) {
    if (value === null || value === undefined) return "—";
    return value.toFixed(scale === "percent" ? 1 : 3);
  }

  function g4(value) {
    return value === null || value === undefined ? "–" : String(Number(value.toPrecision(4)));
  }

  // The axis of a metric's scale; other scales span zero to their largest value.
  function domainOf(scale, values) {
    if (scale === "percent") return [0, 100];
    if (scale === "fraction") return [0, 1];
    const low = values.reduce((a, b) => Math.min(a, b), 0);
    return [low, values.reduce((a, b) => Math.max(a, b), low + 1)];
  }

  function header() {
    const gate = REPORT.gate;
    const meta = h(
      "p",
      { class: "meta" },
      h("code", { text: REPORT.benchmarkId || "" }),
      " · ",
      h("span", { class: "badge status", text: REPORT.status || "" }),
      REPORT.completedAt ? " · completed " + REPORT.completedAt : "",
      gate ? " · gate " : "",
      gate ? h("span", { class: "badge " + gate.decision, id: "gate-decision", text: gate.decision }) : null,
    );
    const nav = h(
      "nav",
      {},
      h("a", { href: "#results", text: "Results" }),
      gate ? h("a", { href: "#gate", text: "Gate" }) : null,
      h("a", { href: "#charts", text: "Charts" }),
      h("a", { href: "#item-browser", text: "Items" }),
    );
    const error = REPORT.error ? h("p", { class: "failed", text: "Error: " + REPORT.error }) : null;
    app.append(h("header", {}, h("h1", { text: REPORT.name || "benchgate report" }), meta, error, nav));
  }

  function intervalBar(stats, scale) {
    const [low, high] = domainOf(scale, []);
    if (stats.value === null || stats.value === undefined || (scale !== "percent" && scale !== "fraction")) {
      return null;
    }
    const x = (v) => 2 + (76 * (Math.min(high, Math.max(low, v)) - low)) / (high - low);
    const svg = s("svg", { width: 80, height: 8, class: "cibar", "aria-hidden": "true" });
    s("rect", { x: 2, y: 3, width: 76, height: 2, fill: "#e6e9ef" }, svg);
    if (stats.ci_low != null && stats.ci_high != null) {
      const from = x(stats.ci_low);
      s("rect", { x: from, y: 1, width: Math.max(1, x(stats.ci_high) - from), height: 6, fill: "#9fb6ec" }, svg);
    }
    s("rect", { x: x(stats.value) - 1, y: 0, width: 2, height: 8, fill: "#2f5fd0" }, svg);
    return svg;
  }

  function results() {
    const section = h("section", { id: "results" }, h("h2", { text: "Results" }));
    for (const task of TASKS) {
      const metrics = metricsOf(task);
      const dataset = (SECTIONS[task] || {}).dataset || "";
      section.append(h("h3", { text: dataset ? task + " · " + dataset : task }));
      const head = h("tr", {}, h("th", { text: "model" }));
      for (const metric of metrics) head.append(h("th", { text: metric }));
      head.append(h("th", { text: "n" }), h("th", { text: "errors" }), h("th", { text: "latency p50 / p95 ms" }));
      const body = h("tbody");
      const rows = (SECTIONS[task] || {}).results || [];
      const models = unique([...rows.map((r) => r.model), ...Object.keys(DETAILS[task] || {})]);
      for (const model of models) {
        const detail = (DETAILS[task] || {})[model] || {};
        const row = rows.find((r) => r.model === model) || {};
        const tr = h("tr", { "data-model": model }, h("td", {}, swatch(model), model));
        if (detail.failure) {
          tr.append(h("td", { class: "failed", colspan: metrics.length + 3, text: "failed: " + detail.failure }));
          body.append(tr);
          continue;
        }
        for (const metric of metrics) {
          const scale = scaleOf(task, metric);
          const stats = (detail.metrics || {})[metric] || { value: row[metric] };
          const cell = h("td", { class: "num", "data-metric": metric }, h("span", { text: fmt(stats.value, scale) }));
          if (stats.ci_low !== undefined) {
            cell.append(h("span", { class: "ci", text: " [" + fmt(stats.ci_low, scale) + ", " + fmt(stats.ci_high, scale) + "]" }));
          }
          cell.append(intervalBar(stats, scale) || "");
          tr.append(cell);
        }
        const latency = detail.latency_ms || {};
        const errors = (detail.n_errors ?? "") + (detail.inconclusive ? " ⚠ inconclusive" : "");
        tr.append(
          h("td", { class: "num", "data-field": "n", text: String(detail.n ?? "") }),
          h("td", { class: "num", "data-field": "errors", text: String(errors) }),
          h("td", { class: "num", text: g4(latency.p50) + " / " + g4(latency.p95) }),
        );
        body.append(tr);
      }
      const table = h("table", { class: "results", "data-task": task }, h("thead", {}, head), body);
      section.append(h("div", { class: "card" }, table));
    }
    section.append(
      h("p", { class: "note", text: "Values with 95% bootstrap confidence intervals over items; ROUGE as fractions, others in percent." }),
    );
    app.append(section);
  }

  function gate() {
    const decision = REPORT.gate;
    if (!decision) return;
    const section = h(
      "section",
      { id: "gate" },
      h("h2", {}, "Gate ", h("span", { class: "badge " + decision.decision, text: decision.decision })),
    );
    const head = h("tr");
    for (const name of ["verdict", "rule", "task", "observed", "difference", "p", "reason"]) {
      head.append(h("th", { text: name }));
    }
    const body = h("tbody");
    for (const v of decision.rules) {
      // As report.md: a relative rule's interval is the difference's, an absolute rule's the metric's own.
      let observed = Object.entries(v.observed || {}).map(([m, x]) => m + " " + g4(x)).join(", ");
      let difference = g4(v.difference);
      if (v.difference !== null && v.difference >= 0) difference = "+" + difference;
      const level = v.ci_level ? Math.round(v.ci_level * 100) + "% " : "";
      const interval = v.ci_low !== null && v.ci_high !== null ? " (" + level + "CI " + g4(v.ci_low) + " to " + g4(v.ci_high) + ")" : "";
      if (v.reference !== null) difference += interval;
      else {
        observed += interval;
        if (v.difference !== null) difference += " from " + g4(v.threshold);
      }
      const p = g4(v.p_value) + (v.p_adjusted !== null ? " (Holm " + g4(v.p_adjusted) + ")" : "");
      body.append(
        h(
          "tr",
          { class: "verdict" },
          h("td", {}, h("span", { class: "badge " + v.verdict, text: v.verdict })),
          h("td", { text: v.rule }),
          h("td", { text: v.task }),
          h("td", { class: "num", text: observed }),
          h("td", { class: "num", text: difference }),
          h("td", { class: "num", text: p }),
          h("td", { text: v.reason }),
        ),
      );
    }
    if (!decision.rules.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No rules." })));
    section.append(h("div", { class: "card" }, h("table", { id: "verdicts" }, h("thead", {}, head), body)));
    for (const d of decision.deliveries || []) {
      const outcome = d.ok ? "delivered" : "FAILED (" + d.error + ")";
      section.append(h("p", { class: "note", text: "Webhook " + d.event + " → " + d.url + ": " + outcome + ", " + d.attempts + " attempt(s)" }));
    }
    app.append(section);
  }

  function chartCard(title, width, height) {
    const svg = s("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    s("title", {}, svg, title);
    return [h("div", { class: "chart" }, h("h4", { text: title }), svg), svg];
  }

  // A domain around [low, high] on round numbers (steps of 1, 2 or 5 x 10^k), kept inside the scale's range.
  function niceDomain(low, high, scale) {
    const raw = Math.max(high - low, 1e-9) / 4;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((v) => v >= raw);
    const bounds = scale === "percent" ? [0, 100] : scale === "fraction" ? [0, 1] : [-Infinity, Infinity];
    const from = Math.max(bounds[0], Math.floor(low / step) * step);
    const to = Math.min(bounds[1], Math.ceil(high / step) * step);
    const ticks = [];
    for (let v = from; v <= to + step / 1e6; v += step) ticks.push(Number(v.toPrecision(12)));
    return { domain: [from, Math.max(to, from + step)], ticks: ticks };
  }

  function yAxis(svg, y, ticks, left, right) {
    for (const value of ticks) {
      s("line", { x1: left, x2: right, y1: y(value), y2: y(value), stroke: "#eef0f4" }, svg);
      s("text", { x: left - 4, y: y(value) + 3, "text-anchor": "end" }, svg, g4(value));
    }
  }

  // Metric history: a line per model over the recent runs, whiskers for the 95% interval.
  function historyCharts(container) {
    const runs = unique(
      HISTORY.slice()
        .sort((a, b) => (a.completed_at || "").localeCompare(b.completed_at || "") || a.benchmark_id.localeCompare(b.benchmark_id))
        .map((r) => r.benchmark_id),
    );
    const groups = new Map();
    for (const row of HISTORY) {
      const key = row.task + "\u0000" + row.metric;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(row);
    }
    for (const [key, rows] of groups) {
      const [task, metric] = key.split("\u0000");
      const scale = rows[0].scale;
      const values = rows.flatMap((r) => [r.value, r.ci_low, r.ci_high]).filter((v) => v !== null);
      const pad = (scale === "percent" ? 100 : 1) * 0.02;
      const axis = niceDomain(Math.min(...values) - pad, Math.max(...values) + pad, scale);
      const [low, high] = axis.domain;
      const [W, H, L, R, T, B] = [360, 200, 40, 12, 10, 32];
      const [card, svg] = chartCard(task + " · " + metric + " over recent runs", W, H);
      const y = (v) => T + ((H - T - B) * (high - v)) / (high - low);
      const inner = W - L - R - 40;
      const step = runs.length > 1 ? inner / (runs.length - 1) : 0;
      const x = (run) => L + 20 + (runs.length > 1 ? step * runs.indexOf(run) : inner / 2);
      yAxis(svg, y, axis.ticks, L, W - R);
      const used = unique(rows.map((r) => r.benchmark_id));
      // Each run's date and time under it (MM-DD, HH:MM); with many runs only the first and the last.
      const labelled = runs.filter((r, i) => used.includes(r) && (runs.length <= 8 || i === 0 || i === runs.length - 1));
      for (const run of labelled) {
        const when = rows.find((r) => r.benchmark_id === run).completed_at || "";
        s("text", { x: x(run), y: H - B + 13, "text-anchor": "middle" }, svg, when.slice(5, 10));
        s("text", { x: x(run), y: H - B + 25, "text-anchor": "middle" }, svg, when.slice(11, 16));
      }
      const models = MODELS.filter((m) => rows.some((r) => r.model === m));
      models.forEach((model, index) => {
        const series = rows.filter((r) => r.model === model && r.value !== null).sort((a, b) => runs.indexOf(a.benchmark_id) - runs.indexOf(b.benchmark_id));
        const dx = (index - (models.length - 1) / 2) * 4;
        const points = series.map((r) => x(r.benchmark_id) + dx + "," + y(r.value)).join(" ");
        s("polyline", { points: points, fill: "none", stroke: colour(model), "stroke-width": 1.5 }, svg);
        for (const r of series) {
          const cx = x(r.benchmark_id) + dx;
          if (r.ci_low !== null && r.ci_high !== null) {
            s("line", { x1: cx, x2: cx, y1: y(r.ci_low), y2: y(r.ci_high), stroke: colour(model), "stroke-opacity": 0.55, "stroke-width": 2 }, svg);
          }
          const dot = s("circle", { cx: cx, cy: y(r.value), r: 3.2, fill: colour(model) }, svg);
          s("title", {}, dot, model + " · " + r.benchmark_id + ": " + fmt(r.value, scale) + " [" + fmt(r.ci_low, scale) + ", " + fmt(r.ci_high, scale) + "]");
        }
      });
      container.append(card);
    }
  }

  // Per-model score distributions: a 10-bin histogram row per model, with the mean marked.
  function distributionCharts(container) {
    for (const task of TASKS) {
      for (const metric of metricsOf(task)) {
        const scale = scaleOf(task, metric);
        const byModel = MODELS.map((m) => [m, ITEMS.filter((i) => i.task === task && i.model === m && i.scores[metric] !== undefined && i.scores[metric] !== null).map((i) => i.scores[metric])]).filter(([, v]) => v.length);
        if (!byModel.length) continue;
        const [low, high] = domainOf(scale, byModel.flatMap(([, v]) => v));
        const BINS = 10;
        const [W, L, R, ROW] = [360, 90, 12, 34];
        const H = 16 + ROW * byModel.length + 16;
        const [card, svg] = chartCard(task + " · " + metric + " per item", W, H);
        const x = (v) => L + ((W - L - R) * (v - low)) / (high - low || 1);
        byModel.forEach(([model, values], row) => {
          const counts = new Array(BINS).fill(0);
          for (const v of values) counts[Math.min(BINS - 1, Math.max(0, Math.floor(((v - low) / (high - low || 1)) * BINS)))]++;
          const top = 12 + row * ROW;
          const most = Math.max(...counts);
          const width = (W - L - R) / BINS;
          s("text", { x: L - 6, y: top + 15, "text-anchor": "end", class: "label" }, svg, model);
          s("text", { x: L - 6, y: top + 26, "text-anchor": "end" }, svg, "n=" + values.length);
          counts.forEach((count, bin) => {
            const barHeight = most ? ((ROW - 8) * count) / most : 0;
            const bar = s("rect", { x: L + bin * width + 1, y: top + ROW - 6 - barHeight, width: width - 2, height: barHeight, fill: colour(model), "fill-opacity": 0.8 }, svg);
            s("title", {}, bar, count + " item(s)");
          });
          const mean = values.reduce((a, b) => a + b, 0) / values.length;
          s("line", { x1: x(mean), x2: x(mean), y1: top + 2, y2: top + ROW - 4, stroke: "#1d2330", "stroke-dasharray": "3,2" }, svg);
          s("title", {}, s("circle", { cx: x(mean), cy: top + 2, r: 2.5, fill: "#1d2330" }, svg), "mean " + fmt(mean, scale));
        });
        const axis = H - 6;
        s("text", { x: L, y: axis, "text-anchor": "start" }, svg, fmt(low, scale));
        s("text", { x: W - R, y: axis, "text-anchor": "end" }, svg, fmt(high, scale));
        container.append(card);
      }
    }
  }

  function barChart(container, title, rows, unit) {
    // rows: [model, [[label, value, opacity], ...]]; the value axis starts at zero.
    const most = Math.max(0, ...rows.flatMap(([, bars]) => bars.map((b) => b[1] || 0)));
    const [W, L, R, ROW] = [360, 90, 104, 22];
    const H = 10 + ROW * rows.length + 6;
    const [card, svg] = chartCard(title, W, H);
    rows.forEach(([model, bars], index) => {
      const top = 8 + index * ROW;
      s("text", { x: L - 6, y: top + 13, "text-anchor": "end", class: "label" }, svg, model);
      // Longest first, so a shorter bar (p50 inside p95) is drawn over it and stays visible.
      for (const [label, value, opacity] of bars.slice().sort((p, q) => (q[1] || 0) - (p[1] || 0))) {
        const width = most ? ((W - L - R) * (value || 0)) / most : 0;
        const bar = s("rect", { x: L, y: top + 3, width: Math.max(width, value ? 1 : 0), height: 14, fill: colour(model), "fill-opacity": opacity }, svg);
        s("title", {}, bar, model + " " + label + ": " + g4(value) + " " + unit);
      }
      const labels = bars.map(([, value]) => (value === null || value === undefined ? "–" : String(Number(value.toPrecision(2)))));
      s("text", { x: W - R + 4, y: top + 14 }, svg, labels.join(" / ") + " " + unit);
    });
    container.append(card);
  }

  function costCharts(container) {
    for (const task of TASKS) {
      const models = Object.keys(DETAILS[task] || {}).filter((m) => !DETAILS[task][m].failure);
      if (!models.length) continue;
      const rows = models.map((m) => {
        const latency = DETAILS[task][m].latency_ms || {};
        return [m, [["p50", latency.p50, 0.9], ["p95", latency.p95, 0.35]]];
      });
      barChart(container, task + " · latency p50 / p95", rows, "ms");
    }
    const costs = MODELS.map((m) => {
      const values = TASKS.map((t) => ((DETAILS[t] || {})[m] || {}).cost_usd).filter((v) => v !== null && v !== undefined);
      return [m, values.length ? values.reduce((a, b) => a + b, 0) : null];
    });
    if (costs.some(([, v]) => v !== null)) {
      barChart(container, "cost over all tasks (USD)", costs.map(([m, v]) => [m, [["total", v, 0.85]]]), "USD");
    } else {
      container.append(h("div", { class: "chart" }, h("h4", { text: "cost" }), h("p", { class: "note", text: "No model in this run has a price, so no cost was computed." })));
    }
  }

  function charts() {
    const section = h("section", { id: "charts" }, h("h2", { text: "Charts" }));
    const legend = h("div", { class: "legend" });
    for (const model of MODELS) legend.append(h("span", {}, swatch(model), model));
    section.append(legend);
    const parts = [
      ["Metric history", historyCharts],
      ["Score distributions", distributionCharts],
      ["Latency and cost", costCharts],
    ];
    for (const [title, draw] of parts) {
      const container = h("div", { class: "charts" });
      draw(container);
      section.append(h("h3", { text: title }), container.childElementCount ? container : h("p", { class: "note", text: "Nothing recorded." }));
    }
    app.append(section);
  }

  function itemBrowser() {
    for (const item of ITEMS) item.haystack = (item.id + "\n" + item.prompt + "\n" + item.output).toLowerCase();
    const state = { query: "", model: "", task: "", metric: "", regressed: false, page: 0 };
    const open = new Set();
    let shown = ITEMS;

    const select = (id, label, values) =>
      h("select", { id: id, "aria-label": label }, h("option", { value: "", text: "all " + label + "s" }), ...values.map((v) => h("option", { value: v, text: v })));
    const search = h("input", { id: "search", type: "search", placeholder: "Search id, prompt, output…", "aria-label": "search" });
    const models = select("filter-model", "model", unique(ITEMS.map((i) => i.model)));
    const tasks = select("filter-task", "task", unique(ITEMS.map((i) => i.task)));
    const metrics = select("filter-metric", "metric", unique(ITEMS.flatMap((i) => Object.keys(i.scores))));
    const regressed = h("input", { id: "filter-regressed", type: "checkbox" });
    const count = h("span", { id: "item-count" });
    const body = h("tbody");
    const previous = h("button", { type: "button", id: "page-previous", text: "← Previous" });
    const next = h("button", { type: "button", id: "page-next", text: "Next →" });
    const position = h("span", { id: "page-position" });

    function apply() {
      const q = state.query.toLowerCase();
      shown = ITEMS.filter(
        (i) =>
          (!state.model || i.model === state.model) &&
          (!state.task || i.task === state.task) &&
          (!state.metric || i.scores[state.metric] !== undefined) &&
          (!state.regressed || (i.regressed && (!state.metric || i.drops.some((d) => d.metric === state.metric)))) &&
          (!q || i.haystack.includes(q)),
      );
      state.page = 0;
      open.clear();
      draw();
    }

    function scoreCell(item) {
      const cell = h("td", { class: "num" });
      const names = state.metric ? [state.metric] : Object.keys(item.scores);
      for (const metric of names) {
        const drops = item.drops.filter((d) => d.metric === metric);
        const text = metric + " " + fmt(item.scores[metric], scaleOf(item.task, metric));
        const extra = drops.map((d) => " ▼ " + d.reference + " " + fmt(d.score, scaleOf(item.task, metric))).join("");
        cell.append(h("span", { class: drops.length ? "score drop" : "score", text: text + extra }));
      }
      if (item.error) cell.append(h("span", { class: "score drop", text: "error" }));
      return cell;
    }

    function detailRow(item) {
      const list = h("dl");
      const add = (label, value) => list.append(h("dt", { text: label }), h("dd", { text: value || "—" }));
      add("prompt", item.prompt);
      add("output", item.output);
      add("reference", item.reference);
      if (item.error) add("error", item.error);
      add("latency", item.latency_ms === null ? "" : g4(item.latency_ms) + " ms");
      return h("tr", { class: "detail" }, h("td", { colspan: 5, class: "detail" }, list));
    }

    function draw() {
      const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
      state.page = Math.min(state.page, pages - 1);
      const start = state.page * PAGE_SIZE;
      const rows = [];
      shown.slice(start, start + PAGE_SIZE).forEach((item, offset) => {
        const key = start + offset;
        const row = h(
          "tr",
          { class: item.regressed ? "item regressed" : "item", tabindex: 0 },
          h("td", { text: item.model }),
          h("td", { text: item.task }),
          h("td", { text: item.id }),
          scoreCell(item),
          h("td", { class: "text", text: item.output || item.error || "" }),
        );
        const toggle = () => {
          if (open.has(key)) open.delete(key);
          else open.add(key);
          draw();
        };
        row.addEventListener("click", toggle);
        row.addEventListener("keydown", (event) => event.key === "Enter" && toggle());
        rows.push(row);
        if (open.has(key)) rows.push(detailRow(item));
      });
      if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 5, class: "empty", text: "No items match." })));
      body.replaceChildren(...rows);
      count.textContent = shown.length + " of " + ITEMS.length + " items";
      count.dataset.count = String(shown.length);
      position.textContent = "page " + (state.page + 1) + " of " + pages;
      previous.disabled = state.page === 0;
      next.disabled = state.page >= pages - 1;
    }

    search.addEventListener("input", () => {
      state.query = search.value;
      apply();
    });
    for (const [control, key] of [[models, "model"], [tasks, "task"], [metrics, "metric"]]) {
      control.addEventListener("change", () => {
        state[key] = control.value;
        apply();
      });
    }
    regressed.addEventListener("change", () => {
      state.regressed = regressed.checked;
      apply();
    });
    previous.addEventListener("click", () => {
      state.page -= 1;
      open.clear();
      draw();
    });
    next.addEventListener("click", () => {
      state.page += 1;
      open.clear();
      draw();
    });

    const head = h("tr");
    const columns = h("colgroup");
    for (const name of ["model", "task", "item", "scores", "output"]) {
      head.append(h("th", { text: name }));
      columns.append(h("col", { class: "column-" + name }));
    }
    const regressedCount = ITEMS.filter((i) => i.regressed).length;
    app.append(
      h(
        "section",
        { id: "item-browser" },
        h("h2", { text: "Items" }),
        h(
          "div",
          { class: "filters" },
          search,
          models,
          tasks,
          metrics,
          h("label", {}, regressed, " regressed only (" + regressedCount + ")"),
          count,
        ),
        h("div", { class: "card" }, h("table", { id: "items" }, columns, h("thead", {}, head), body)),
        h("div", { class: "pager" }, previous, position, next),
        h("p", { class: "note", text: "Regressed: the candidate scored the item worse than the reference model of one of the gate's relative rules (▼ shows the reference's score). Click a row for its prompt, output and reference." }),
      ),
    );
    draw();
  }

  header();
  results();
  gate();
  charts();
  itemBrowser();
})();

// The live dashboard (docs/dashboard.md): tiles, daily charts and the pipeline, read from the
// app's JSON and read again every few seconds, the filters applied to tiles and charts together.
"use strict";

const POLL_MS = 3000;
const CHARTS = ["gmv_usd", "orders", "return_rate", "conversion_rate", "sla_breach_rate"];
const charts = {};
window.gcCharts = charts;  // (the browser test looks at what each one drew)
let generation = 0;  // bumped when the filters change: an answer asked with the old ones is dropped

function query() {
  const params = new URLSearchParams();
  for (const name of ["country", "channel", "since"]) {
    const value = document.getElementById(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function tile(k) {
  const box = el("div", null, "tile");
  box.dataset.kpi = k.name;
  box.dataset.value = k.value === null ? "" : k.value;
  box.appendChild(el("div", k.name.replaceAll("_", " "), "name"));
  box.appendChild(el("div", fmt(k.value), "value"));
  if ("change" in k) {
    const change = el("div", fmtChange(k.change), "change");
    change.classList.add(Number(k.change) > 0 ? "up" : Number(k.change) < 0 ? "down" : "flat");
    box.appendChild(change);
    const causes = el("ul", null, "causes");
    for (const [cause, part] of k.causes.slice(0, 3)) {
      causes.appendChild(el("li", cause + " " + fmtChange(part)));
    }
    box.appendChild(causes);
  }
  return box;
}

async function loadKpis(params, gen) {
  const data = await getJSON("/api/kpis?" + params);
  if (gen !== generation) return;
  document.getElementById("tiles").replaceChildren(...data.kpis.map(tile));
  return data;
}

function drawChart(name, days, values) {
  const target = document.getElementById("chart-" + name);
  const xs = days.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
  const data = [xs, values];
  if (charts[name]) {
    charts[name].setData(data);
    return;
  }
  const width = Math.max(260, target.clientWidth || 360);
  charts[name] = new uPlot({
    width, height: 160, legend: {show: false}, cursor: {show: true},
    scales: {x: {time: true}},
    axes: [{size: 30}, {size: 72}],
    series: [{}, {label: name, stroke: "#2166ac", width: 2, fill: "rgba(33,102,172,0.08)", spanGaps: true}],
  }, data, target);
}

async function loadDaily(params, gen) {
  const data = await getJSON("/api/daily?" + params);
  if (gen !== generation) return;
  for (const name of CHARTS) drawChart(name, data.series.day, data.series[name]);
}

async function loadHealth(gen) {
  const data = await getJSON("/api/health");
  if (gen !== generation) return;
  const badge = document.getElementById("health-status");
  badge.textContent = data.status;
  badge.className = "badge " + data.status;
  const loop = data.follow_loop;
  document.getElementById("follow").textContent = !loop ? "" : loop.alive
    ? "follow loop: beat " + when(loop.beat_at) : "follow loop: not running";
  fill(document.querySelector("#health tbody"), data.sources.map((s) => [
    s.source_name, s.status, s.staged_rows, s.deferred_rows, when(s.oldest_staged_at), when(s.watermark_ts),
    s.rejected_24h, s.feed_problem || s.last_error || ""]));
}

async function loadRuns(gen) {
  const data = await getJSON("/api/runs?limit=10");
  if (gen !== generation) return;
  fill(document.querySelector("#runs tbody"), data.runs.map((r) => {
    const link = el("a", r.run_id);
    link.href = "/runs/" + encodeURIComponent(r.run_id);
    const reasons = Object.entries(r.rejects).map(([reason, n]) => reason + " " + n).join(", ");
    return [link, when(r.finished_at), r.status + (r.reverts_run_id ? " (reverts " + r.reverts_run_id + ")" : "")
      + (r.error ? ": " + r.error : ""), r.rows_claimed, r.rows_applied, r.rows_rejected, reasons];
  }));
}

async function refresh() {
  const params = query();
  const gen = generation;
  const status = document.getElementById("status");
  try {
    await Promise.all([loadKpis(params, gen), loadDaily(params, gen), loadHealth(gen), loadRuns(gen)]);
    if (gen !== generation) return;
    status.textContent = "updated " + new Date().toLocaleTimeString("en-GB") + " · every " + POLL_MS / 1000 + " s";
    status.classList.remove("error");
  } catch (error) {
    status.textContent = "could not read the warehouse: " + error.message;
    status.classList.add("error");
  }
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  generation += 1;
  history.replaceState(null, "", "?" + query());
  refresh();
});
for (const [name, value] of new URLSearchParams(location.search)) {
  const input = document.getElementById(name);
  if (input) input.value = value;
}
refresh();
setInterval(refresh, POLL_MS);

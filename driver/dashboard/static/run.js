// One run (docs/dashboard.md): what it did per source, why the KPIs moved, what it rejected.
"use strict";

async function loadRun() {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  document.getElementById("title").textContent = "run " + id;
  const status = document.getElementById("status");
  try {
    const data = await getJSON("/api/runs/" + encodeURIComponent(id));
    const r = data.run;
    fill(document.querySelector("#run tbody"), [
      ["status", r.status + (r.error ? ": " + r.error : "")], ["started", when(r.started_at)],
      ["finished", when(r.finished_at)], ["reverts run", r.reverts_run_id || ""],
      ["claimed / applied / rejected / deferred", [r.rows_claimed, r.rows_applied, r.rows_rejected, r.rows_deferred].join(" / ")]]);
    fill(document.querySelector("#sources tbody"), Object.entries(data.sources).map(([name, s]) => [
      name, s.claimed, s.inserted, s.updated, s.stale, s.duplicate, s.rejected, s.deferred]));
    fill(document.querySelector("#attribution tbody"), data.attribution.map((a) => [
      a.kpi, fmt(a.before), fmt(a.after), a.cause, fmtChange(a.contribution)]));
    fill(document.querySelector("#rejects tbody"), data.rejects.map((j) => [
      j.source, j.reason, JSON.stringify(j.key)]));
    status.textContent = "";
  } catch (error) {
    status.textContent = "could not read the run: " + error.message;
    status.classList.add("error");
  }
}

loadRun();

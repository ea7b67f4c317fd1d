// Shared by the dashboard's pages. Every string from the warehouse goes into the page as text
// (textContent), never as HTML: reject reasons and keys are producers' data.
"use strict";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows.map(row));
}

// A KPI value (an exact decimal string): whole numbers with separators, others to 4 places.
function fmt(value) {
  if (value === null || value === undefined) return "n/a";
  const x = Number(value);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  if (Math.abs(x) >= 1000) return x.toLocaleString("en-US", {maximumFractionDigits: 2});
  return x.toLocaleString("en-US", {maximumFractionDigits: 4});
}

// A change, signed: as globalcart explain prints it.
function fmtChange(value) {
  if (value === null || value === undefined) return "n/a";
  const x = Number(value);
  const sign = x > 0 ? "+" : x < 0 ? "−" : "±";
  const a = Math.abs(x);
  const text = Number.isInteger(a) ? a.toLocaleString("en-US")
    : a >= 1 ? a.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2})
    : a.toPrecision(4).replace(/0+$/, "");
  return sign + text;
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

async function getJSON(url) {
  const response = await fetch(url, {headers: {"Accept": "application/json"}});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

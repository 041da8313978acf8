// The committee's reports: a chart (SVG), a table, the same figures as CSV, and the deals or
// transfers behind a figure.
"use strict";
import { api, el, svg, table, t, value, money, amounts, date, organizationName, technologyTitle, link, select, status } from "./ui.js";

const reportKinds = {
  deals: { dimensions: ["sub_park", "field", "institute", "deal_kind", "contract_category", "currency", "month", "quarter", "year"],
    figure: (group) => group.deals, figureName: "dealsCreated",
    columns: ["dealsCreated", "dealsSigned", "total", "licenceIncome", "escrowOutstanding"],
    cells: (group) => [String(group.deals), String(group.signed), amounts(group.total_amount), amounts(group.licence_income), amounts(group.escrow_outstanding)] },
  transfers: { dimensions: ["currency", "code", "sub_park", "month", "quarter", "year"],
    figure: (group) => group.count, figureName: "transfers",
    columns: ["transfers", "amount"], cells: (group) => [String(group.count), amounts(group.amount)] },
};

export async function reports(main) {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const kind = reportKinds[query.get("report")] ? query.get("report") : "deals";
  const spec = reportKinds[kind];
  const dimension = spec.dimensions.includes(query.get("group_by")) ? query.get("group_by") : spec.dimensions[0];
  const parameters = new URLSearchParams({ group_by: dimension });
  for (const name of ["from", "to"]) if (/^\d{4}-\d{2}-\d{2}$/.test(query.get(name) || "")) parameters.set(name, query.get(name));
  const form = el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ report: form.elements.report.value, group_by: form.elements.group_by.value });
    for (const name of ["from", "to"]) if (form.elements[name].value) next.set(name, form.elements[name].value);
    if (!reportKinds[next.get("report")].dimensions.includes(next.get("group_by"))) next.delete("group_by");
    location.hash = "#reports?" + next;
  } },
  select("report", t("report"), [["deals", t("dealReport")], ["transfers", t("transferReport")]], kind),
  select("group_by", t("groupBy"), spec.dimensions.map((d) => [d, value(d)]), dimension),
  el("label", { for: "from" }, t("from")), el("input", { id: "from", name: "from", type: "date", value: parameters.get("from") || "" }),
  el("label", { for: "to" }, t("to")), el("input", { id: "to", name: "to", type: "date", value: parameters.get("to") || "" }),
  el("button", { type: "submit" }, t("show")));
  main.append(form);
  const path = `/v1/reports/${kind}?${parameters}`;
  const report = await api(path);
  const csv = await (await api(path, { accept: "text/csv" })).blob();
  const labels = await Promise.all(report.groups.map((group) => groupLabel(dimension, group.key[dimension])));
  const drilled = el("section", { id: "drill", "aria-live": "polite" });
  const drill = (group, label) => showDrill(drilled, kind, parameters, dimension, group.key[dimension], label);
  main.append(
    el("p", {}, el("a", { href: URL.createObjectURL(csv), download: `${kind}-report.csv` }, t("downloadCsv"))),
    chart(report.groups.map((group, index) => ({ label: labels[index], value: spec.figure(group), onclick: () => drill(group, labels[index]) })), t(spec.figureName)),
    table(t("table"), [t("group"), ...spec.columns.map(t), t("drillDown")], report.groups.map((group, index) => [labels[index], ...spec.cells(group),
      el("button", { type: "button", class: "link", onclick: () => drill(group, labels[index]) }, t("drillDown"))])),
    drilled);
}

async function groupLabel(dimension, code) {
  if (code === null || code === undefined) return "—";
  if (dimension === "sub_park" || dimension === "institute") return organizationName(code);
  return value(String(code));
}

/// A bar chart (SVG) of one figure per group; each bar is a button that drills down.
function chart(bars, caption) {
  const width = 640, barHeight = 26, labelWidth = 220;
  const highest = Math.max(1, ...bars.map((bar) => bar.value));
  return el("figure", { class: "chart" }, svg("svg", { viewBox: `0 0 ${width} ${Math.max(1, bars.length) * barHeight}`, role: "img", "aria-label": caption },
    bars.map((bar, index) => svg("g", { class: "bar", tabindex: 0, role: "button", "aria-label": `${bar.label}: ${bar.value}`,
      onclick: bar.onclick, onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); bar.onclick(); } } },
    svg("text", { x: labelWidth - 8, y: index * barHeight + 17, "text-anchor": "end" }, bar.label.length > 28 ? bar.label.slice(0, 27) + "…" : bar.label),
    svg("rect", { x: labelWidth, y: index * barHeight + 4, height: barHeight - 8, width: Math.max(2, (width - labelWidth - 60) * bar.value / highest) }),
    svg("text", { x: labelWidth + Math.max(2, (width - labelWidth - 60) * bar.value / highest) + 6, y: index * barHeight + 17 }, String(bar.value))))),
  el("figcaption", {}, caption));
}

async function showDrill(section, kind, parameters, dimension, code, label) {
  const query = new URLSearchParams(parameters);
  query.delete("group_by");
  query.set("drill", `${dimension}:${code ?? ""}`);
  query.set("limit", "50");
  section.replaceChildren(status(t("loading")));
  const page = await api(`/v1/reports/${kind}?${query}`);
  const rows = kind === "deals"
    ? await Promise.all(page.data.map(async (d) => [link("#deals/" + d.id, await technologyTitle(d.technology_id)), value(d.kind), value(d.status), money(d.total_amount, d.currency)]))
    : page.data.map((x) => [x.code, money(x.amount, x.currency), x.debit_account_id.slice(0, 8), x.credit_account_id.slice(0, 8), date(x.created_at)]);
  const headings = kind === "deals" ? [t("technology"), t("kind"), t("status"), t("total")] : [t("code"), t("amount"), t("debit"), t("credit"), t("time")];
  section.replaceChildren(table(`${t(kind === "deals" ? "dealsBehind" : "transfersBehind")} ${label}`, headings, rows));
}

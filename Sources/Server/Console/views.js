// The console's views. Each renders into `main` from the API, as the signed-in organization may
// see it; `signal` aborts what it still fetches or streams when the user leaves the view.
"use strict";
import { api, listAll, el, table, t, value, money, date, organizationName, technologyTitle, link, select, details, status, session } from "./ui.js";
import { reports } from "./reports.js";
import { verifyCheckpoint, verifyConsistency, bytesToHex, VerificationError } from "./audit.js";

const dealStatuses = ["draft", "proposed", "approval_required", "approved", "signed", "active", "completed", "cancelled", "disputed", "terminated"];
const technologyStatuses = ["registered", "in_custody", "listed", "licensed", "assigned", "withdrawn"];

/// The views in navigation order, with the kinds of organization that may use each.
export const views = {
  overview: { kinds: null, render: overview },
  approvals: { kinds: ["committee"], render: approvals },
  deals: { kinds: null, render: deals },
  technologies: { kinds: null, render: technologies },
  reports: { kinds: ["committee", "operator", "sub_park"], render: reports },
  activity: { kinds: ["committee", "operator", "sub_park"], render: activity },
  audit: { kinds: null, render: audit },
};

export function mayUse(name, kind) {
  if (!Object.hasOwn(views, name)) return false;
  const view = views[name];
  return view.kinds === null || view.kinds.includes(kind);
}

function countBy(items, key) {
  return items.reduce((counts, item) => ({ ...counts, [item[key]]: (counts[item[key]] || 0) + 1 }), {});
}

function counted(total, truncated) {
  return truncated ? `${total}+ (${t("more")})` : String(total);
}

// Overview: counts of what the caller may see, and the latest events, live.

async function overview(main, _, signal) {
  const [technologyList, demandList, dealList] = await Promise.all([
    listAll("/v1/technologies"), listAll("/v1/demands?status=open"), listAll("/v1/deals")]);
  const escrow = {};
  for (const deal of dealList.items) {
    for (const milestone of deal.milestones) {
      if (milestone.status === "funded" || milestone.status === "disputed") escrow[deal.currency] = (escrow[deal.currency] || 0) + milestone.amount;
    }
  }
  const byState = countBy(technologyList.items, "status");
  const byStatus = countBy(dealList.items, "status");
  const events = el("tbody", {});
  const eventStatus = status(t("waitingForEvents"));
  main.append(
    el("div", { class: "cards" },
      table(t("technologiesByState"), [t("state"), t("count")], technologyStatuses.filter((s) => byState[s]).map((s) => [value(s), String(byState[s])])),
      el("section", { class: "figure" }, el("h3", {}, t("openDemands")), el("p", { class: "big" }, counted(demandList.items.length, demandList.truncated))),
      table(t("dealsByStatus"), [t("status"), t("count")], dealStatuses.filter((s) => byStatus[s]).map((s) => [value(s), String(byStatus[s])])),
      table(t("escrowOutstanding"), [t("currency"), t("amount")], Object.entries(escrow).map(([currency, minor]) => [currency, money(minor, currency)]))),
    el("section", { "aria-live": "polite" }, el("h3", {}, t("latestEvents"), " ", el("span", { class: "badge" }, t("live"))), eventStatus,
      el("div", { class: "scroll" }, el("table", { id: "events" },
        el("thead", {}, el("tr", {}, [t("number"), t("event"), t("time")].map((heading) => el("th", { scope: "col" }, heading)))), events))));
  followEvents(signal, (event) => {
    eventStatus.hidden = true;
    events.prepend(el("tr", {}, el("td", {}, String(event.seq)), el("td", {}, event.type), el("td", {}, date(event.created_at))));
    while (events.rows.length > 10) events.deleteRow(-1);
  }).catch((failure) => {
    if (failure.name !== "AbortError") eventStatus.textContent = `${t("failed")} ${failure.message}`;
  });
}

/// Follows the event stream from a little before the newest event (so the latest show at once),
/// calling `onEvent` with each until `signal` aborts.
async function followEvents(signal, onEvent) {
  const { size } = await api("/v1/audit/checkpoint", { signal });
  const headers = size > 50 ? { "Last-Event-ID": String(size - 50) } : {};
  const response = await api("/v1/events/stream", { accept: "text/event-stream", headers, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const data = buffer.slice(0, end).split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n");
      buffer = buffer.slice(end + 2);
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// Approvals: the committee approves or rejects deals waiting for it, each with a reason.

async function approvals(main) {
  const { items } = await listAll("/v1/deals?status=approval_required", 200);
  if (items.length === 0) { main.append(status(t("noApprovals"))); return; }
  for (const deal of items) {
    const [title, seller, buyer, broker] = await Promise.all([technologyTitle(deal.technology_id), organizationName(deal.seller_id),
      organizationName(deal.buyer_id), deal.broker_id ? organizationName(deal.broker_id) : null]);
    main.append(el("article", { class: "card", "aria-label": title },
      el("h3", {}, title),
      details([[t("parties"), [seller, " → ", buyer, broker ? ` (${t("broker")}: ${broker})` : ""]], [t("kind"), value(deal.kind)],
        [t("territories"), deal.territories.join(", ")], [t("total"), money(deal.total_amount, deal.currency)], [t("rule"), deal.approval_rule || "—"]]),
      el("div", { class: "actions" },
        el("button", { type: "button", onclick: () => decide(deal, "approve", main) }, t("approve")),
        el("button", { type: "button", class: "secondary", onclick: () => decide(deal, "reject", main) }, t("reject")))));
  }
}

/// Asks for a reason and a confirmation, then records the committee's decision.
function decide(deal, decision, main) {
  const reason = el("textarea", { id: "reason", name: "reason", required: true, maxlength: 2000, rows: 3 });
  const error = el("p", { role: "alert" });
  // Closed by Cancel, by Escape or after the decision; then it leaves the page.
  const dialog = el("dialog", { "aria-labelledby": "decision-heading", onclose: () => dialog.remove() });
  const close = () => dialog.close();
  dialog.append(el("form", {
    method: "dialog",
    onsubmit: async (event) => {
      event.preventDefault();
      if (!reason.value.trim()) { error.textContent = t("reason"); reason.focus(); return; }
      try {
        await api(`/v1/deals/${deal.id}/approvals`, { method: "POST", body: { decision, reason: reason.value.trim() } });
        close();
        main.replaceChildren(status(t("decided")));
        await approvals(main);
      } catch (failure) {
        error.textContent = `${t("failed")} ${failure.message}`;
      }
    },
  },
  el("h3", { id: "decision-heading" }, t(decision === "approve" ? "approveHeading" : "rejectHeading")),
  el("label", { for: "reason" }, t("reason")), reason, error,
  el("div", { class: "actions" }, el("button", { type: "submit" }, t("confirm")),
    el("button", { type: "button", class: "secondary", onclick: close }, t("cancel")))));
  document.body.append(dialog);
  dialog.showModal();
  reason.focus();
}

// Deals: a filterable list, and a deal's page.

async function deals(main, [id]) {
  if (id) return deal(main, id);
  const current = new URLSearchParams(location.hash.split("?")[1] || "").get("status") || "";
  const form = el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const value = form.elements.status.value;
    location.hash = "#deals" + (value ? "?status=" + value : "");
  } }, select("status", t("status"), [["", t("allStatuses")], ...dealStatuses.map((s) => [s, value(s)])], current),
  el("button", { type: "submit" }, t("filter")));
  main.append(form);
  const page = await api("/v1/deals?limit=50" + (current ? "&status=" + current : ""));
  const rows = await Promise.all(page.data.map(async (item) => [
    link("#deals/" + item.id, await technologyTitle(item.technology_id)), value(item.kind), value(item.status),
    money(item.total_amount, item.currency), date(item.created_at)]));
  main.append(table(t("deals"), [t("technology"), t("kind"), t("status"), t("total"), t("created")], rows));
}

async function deal(main, id) {
  const [item, versions] = await Promise.all([api("/v1/deals/" + id), api(`/v1/deals/${id}/versions?limit=200`)]);
  const [title, seller, buyer, broker] = await Promise.all([technologyTitle(item.technology_id), organizationName(item.seller_id),
    organizationName(item.buyer_id), item.broker_id ? organizationName(item.broker_id) : "—"]);
  main.append(
    el("p", {}, link("#deals", "← " + t("back"))),
    el("h3", {}, title),
    details([[t("status"), value(item.status)], [t("seller"), seller], [t("buyer"), buyer], [t("broker"), broker], [t("kind"), value(item.kind)],
      [t("fieldOfUse"), item.field_of_use], [t("territories"), item.territories.join(", ")], [t("term"), `${item.term} ${t("months")}`],
      [t("upfront"), money(item.upfront, item.currency)], [t("royalty"), `${item.royalty_bp / 100}%`], [t("total"), money(item.total_amount, item.currency)],
      [t("rule"), item.approval_rule || "—"]]),
    el("h4", {}, t("signatures")),
    details([[t("seller"), item.seller_signed_at ? date(item.seller_signed_at) : t("notSigned")],
      [t("buyer"), item.buyer_signed_at ? date(item.buyer_signed_at) : t("notSigned")],
      [t("escrow"), item.funded_at ? `${t("funded")} ${date(item.funded_at)}` : t("notFunded")]]),
    table(t("milestones"), [t("number"), t("milestone"), t("amount"), t("due"), t("status")],
      item.milestones.map((m) => [String(m.number), m.name, money(m.amount, item.currency), date(m.due_on), value(m.status)])),
    table(t("versions"), [t("version"), t("kind"), t("total"), t("created")],
      versions.data.map((v) => [String(v.version), value(v.terms.kind), money(v.terms.total_amount, v.terms.currency), date(v.created_at)])));
}

// Technologies: search with filters, and a technology's page.

async function technologies(main, [id]) {
  if (id) return technology(main, id);
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const fields = await api("/v1/fields?limit=200");
  const fieldName = (code) => (fields.data.find((field) => field.code === code) || {})[session.language === "zh" ? "name_zh" : "name_en"] || code;
  const form = el("form", { class: "filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of ["q", "field", "status"]) if (form.elements[name].value) next.set(name, form.elements[name].value);
    location.hash = "#technologies?" + next;
  } },
  el("label", { for: "q" }, t("search")), el("input", { id: "q", name: "q", type: "search", maxlength: 200, value: query.get("q") || "" }),
  select("field", t("field"), [["", t("allFields")], ...fields.data.map((field) => [field.code, fieldName(field.code)])], query.get("field") || ""),
  select("status", t("state"), [["", t("allStatuses")], ...technologyStatuses.map((s) => [s, value(s)])], query.get("status") || ""),
  el("button", { type: "submit" }, t("search")));
  main.append(form);
  const page = await api("/v1/technologies?limit=50&" + new URLSearchParams([...query].filter(([name]) => ["q", "field", "status"].includes(name))));
  main.append(el("div", { id: "results" }, table(t("technologies"), [t("title"), t("field"), t("state"), t("trl")],
    page.data.map((item) => [link("#technologies/" + item.id, item.title), fieldName(item.field), value(item.status),
      `${item.trl}${item.trl_verified ? " (" + t("verified") + ")" : ""}`]))));
}

async function technology(main, id) {
  const [item, verifications, history] = await Promise.all([api("/v1/technologies/" + id),
    api(`/v1/technologies/${id}/verifications?limit=200`), api(`/v1/technologies/${id}/history?limit=200`)]);
  main.append(
    el("p", {}, link("#technologies", "← " + t("back"))),
    el("h3", {}, item.title), el("p", {}, item.summary),
    details([[t("field"), item.field], [t("state"), value(item.status)], [t("trl"), String(item.trl)], [t("seller"), await organizationName(item.owner_id)]]),
    table(t("ipRights"), [t("right"), t("office"), t("number"), t("rightStatus")], item.ip_rights.map((r) => [r.type, r.office, r.number, r.status])),
    table(t("inventors"), [t("inventors"), t("share")], item.inventors.map((i) => [i.name, `${i.share_bp / 100}%`])),
    table(t("verifications"), [t("verifier"), t("result"), t("trl"), t("time")],
      await Promise.all(verifications.data.map(async (v) => [await organizationName(v.verifier_id), v.result, String(v.trl_evidenced ?? "—"), date(v.created_at)]))),
    table(t("history"), [t("version"), t("change"), t("time")], history.data.map((h) => [String(h.version), h.event, date(h.changed_at)])));
}

// Activity: what a sub-park's members did over a period.

async function activity(main) {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const parks = session.caller.organization.kind === "sub_park" ? [session.caller.organization]
    : (await listAll("/v1/organizations", 1000)).items.filter((organization) => organization.kind === "sub_park");
  if (parks.length === 0) { main.append(status(t("none"))); return; }
  const park = parks.find((p) => p.id === query.get("sub_park")) || parks[0];
  const parameters = new URLSearchParams();
  for (const name of ["from", "to"]) if (/^\d{4}-\d{2}-\d{2}$/.test(query.get(name) || "")) parameters.set(name, query.get(name));
  const form = el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ sub_park: form.elements.sub_park.value });
    for (const name of ["from", "to"]) if (form.elements[name].value) next.set(name, form.elements[name].value);
    location.hash = "#activity?" + next;
  } },
  select("sub_park", t("subPark"), parks.map((p) => [p.id, p.name]), park.id),
  el("label", { for: "from" }, t("from")), el("input", { id: "from", name: "from", type: "date", value: parameters.get("from") || "" }),
  el("label", { for: "to" }, t("to")), el("input", { id: "to", name: "to", type: "date", value: parameters.get("to") || "" }),
  el("button", { type: "submit" }, t("show")));
  const figures = await api(`/v1/sub-parks/${park.id}/activity?${parameters}`);
  main.append(form, details([[t("subPark"), park.name], [t("from"), date(figures.from)], [t("to"), date(figures.to)], [t("members"), String(figures.members)]]));
  for (const name of ["technologies", "demands", "matches"]) {
    const counts = figures[name];
    main.append(el("section", { class: "cards" }, el("h3", {}, `${t(name)}: ${counts.total}`),
      table(t("byField"), [t("field"), t("count")], Object.entries(counts.by_field).map(([field, count]) => [field, String(count)])),
      table(t("byStatus"), [t("status"), t("count")], Object.entries(counts.by_status).map(([state, count]) => [value(state), String(count)]))));
  }
}

// Audit: verify the log in this browser. The first visit pins the signing key and saves the
// checkpoint; later visits verify the new checkpoint's signature with the pinned key and prove,
// with the server's consistency proof, that the log only grew since the saved one.

const savedCheckpoint = "techbank.auditCheckpoint";

async function audit(main) {
  const checkpoint = await api("/v1/audit/checkpoint");
  const { verifier_key: verifierKey } = await api("/v1/audit/public-key");
  const outcome = el("div", { id: "verification", "aria-live": "polite" });
  main.append(
    details([[t("size"), String(checkpoint.size)], [t("rootHash"), el("code", {}, checkpoint.root_hash)], [t("signingKey"), el("code", {}, verifierKey)]]),
    el("button", { type: "button", id: "verify", onclick: () => verify(outcome) }, t("verify")),
    outcome);
}

async function verify(outcome) {
  outcome.replaceChildren(status(t("loading")));
  try {
    const saved = JSON.parse(localStorage.getItem(savedCheckpoint) || "null");
    const { verifier_key: serverKey } = await api("/v1/audit/public-key");
    if (saved && saved.verifierKey !== serverKey) throw new VerificationError("keyChanged");
    const verifierKey = saved ? saved.verifierKey : serverKey;
    const { note } = await api("/v1/audit/checkpoint");
    const current = await verifyCheckpoint(note, verifierKey);
    let message = t("savedFirst");
    if (saved) {
      if (saved.size > current.size) throw new VerificationError("shrank");
      const { proof } = await api(`/v1/audit/proofs/consistency?from=${saved.size}&to=${current.size}`);
      const savedRoot = Uint8Array.from(saved.root.match(/../g) || [], (pair) => parseInt(pair, 16));
      await verifyConsistency(saved.size, current.size, savedRoot, current.root, proof);
      message = t("grew").replaceAll("{from}", String(saved.size)).replaceAll("{to}", String(current.size));
    }
    localStorage.setItem(savedCheckpoint, JSON.stringify({ verifierKey, size: current.size, root: bytesToHex(current.root) }));
    outcome.replaceChildren(el("p", { role: "status", class: "verified" }, el("strong", {}, t("verifiedText"))), el("p", {}, message));
  } catch (failure) {
    const reason = failure instanceof VerificationError ? t(failure.reason) : failure.message;
    outcome.replaceChildren(el("p", { role: "alert", class: "failed" }, `${t("verificationFailed")} ${reason}`));
  }
}

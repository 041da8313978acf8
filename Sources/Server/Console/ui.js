// What every view shares: the session, the language, calls to the API, and building the page.
// Texts from the API only ever become text nodes: `el` has no way to insert HTML.
"use strict";
import { texts } from "./texts.js";

export const session = {
  language: (sessionStorage.getItem("language") || navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en",
  caller: null,
};

export function t(key) {
  return Object.hasOwn(texts[session.language], key) ? texts[session.language][key] : key;
}

/// An enumerated value from the API (a status, a kind, a dimension) in the user's language.
export function value(code) {
  return Object.hasOwn(texts[session.language].values, code) ? texts[session.language].values[code] : code;
}

export function locale() {
  return session.language === "zh" ? "zh-CN" : "en";
}

/// A failed call: its HTTP status and, when the server sent one, the problem's detail.
export class APIFailure extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

/// Calls the API with the tab's key; the JSON answer, or the response itself for `accept` other
/// than JSON. Throws an APIFailure for anything but 2xx.
export async function api(path, { method = "GET", body, accept = "application/json", headers = {}, signal } = {}) {
  const request = { method, signal, headers: { Authorization: "Bearer " + sessionStorage.getItem("apiKey"), Accept: accept, ...headers } };
  if (body !== undefined) {
    request.body = JSON.stringify(body);
    request.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, request);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new APIFailure(0, t("unreachable"));
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new APIFailure(response.status, problem.detail || problem.title || response.statusText);
  }
  return accept === "application/json" ? response.json() : response;
}

/// Every item of a listing, following its cursor; at most `cap` (then `truncated` is set).
export async function listAll(path, cap = 1000) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page = await api(path + separator + "limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && items.length < cap);
  return { items, truncated: cursor !== null };
}

function build(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }
  return element;
}

/// An HTML element with attributes (`on…` keys become listeners) and children: strings become
/// text nodes; null, undefined and false are skipped.
export function el(tag, attributes = {}, ...children) {
  return build(document.createElement(tag), attributes, children);
}

/// The same for SVG elements (the URI is the SVG namespace's name, never fetched).
export function svg(tag, attributes = {}, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attributes, children);
}

/// A table with a caption, column headings and rows of cells (texts or elements).
export function table(caption, headings, rows) {
  if (rows.length === 0) return el("p", {}, caption ? caption + ": " : "", t("none"));
  return el("div", { class: "scroll" }, el("table", {},
    caption ? el("caption", {}, caption) : null,
    el("thead", {}, el("tr", {}, headings.map((heading) => el("th", { scope: "col" }, heading)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell)))))));
}

/// An amount in minor units as its currency shows it (CNY 12.34 from 1234), in the user's language.
export function money(minor, currency) {
  const format = new Intl.NumberFormat(locale(), { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

/// Amounts per currency (`{"CNY": 1234}`) as one text.
export function amounts(byCurrency) {
  const entries = Object.entries(byCurrency || {});
  return entries.length ? entries.map(([currency, minor]) => money(minor, currency)).join(", ") : "—";
}

export function date(text) {
  if (!text) return "—";
  const value = new Date(text);
  return /^\d{4}-\d{2}-\d{2}$/.test(text)
    ? value.toLocaleDateString(locale(), { timeZone: "UTC" })
    : value.toLocaleString(locale());
}

/// What this session fetched once per id: organizations' names and technologies' titles. Signing
/// out forgets them, so the next organization in this tab sees only what it may fetch itself.
const names = new Map();
const titles = new Map();
export function forgetSession() {
  names.clear();
  titles.clear();
}

/// An organization's name by id (its id's start if the caller may not see it).
export async function organizationName(id) {
  if (!id) return "—";
  if (!names.has(id)) names.set(id, api("/v1/organizations/" + id).then((organization) => organization.name, () => id.slice(0, 8)));
  return names.get(id);
}


/// A status line that screen readers announce.
export function status(text, kind = "status") {
  return el("p", { role: kind, class: kind }, text);
}

/// A technology's title by id, fetched once per id (its id's start if the caller may not see it).
export function technologyTitle(id) {
  if (!titles.has(id)) titles.set(id, api("/v1/technologies/" + id).then((technology) => technology.title, () => id.slice(0, 8)));
  return titles.get(id);
}

export function link(href, text) {
  return el("a", { href }, text);
}

/// A labelled select of `[value, text]` options.
export function select(id, label, options, chosen) {
  return [el("label", { for: id }, label),
    el("select", { id, name: id }, options.map(([option, text]) => el("option", { value: option, selected: option === chosen }, text)))];
}

/// A description list of `[term, description]` pairs.
export function details(pairs) {
  return el("dl", {}, pairs.flatMap(([term, description]) => [el("dt", {}, term), el("dd", {}, description)]));
}

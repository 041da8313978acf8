// The committee's console: sign-in, language, navigation and routing. The API key stays in this
// tab's sessionStorage and travels only in the Authorization header; every text from the API is
// inserted as text (see ui.js).
"use strict";
import { session, t, api, el, status, forgetSession } from "./ui.js";
import { views, mayUse } from "./views.js";

let leaving = null;

function render() {
  document.documentElement.lang = session.language === "zh" ? "zh-Hans" : "en";
  document.title = t("appTitle");
  for (const element of document.querySelectorAll("[data-text]")) element.textContent = t(element.dataset.text);
  const switcher = document.getElementById("language");
  switcher.textContent = t("switchTo");
  switcher.setAttribute("aria-label", t("switchTo"));
  const caller = session.caller;
  document.getElementById("sign-in").hidden = caller !== null;
  document.getElementById("session").hidden = caller === null;
  document.getElementById("navigation").hidden = caller === null;
  if (caller) {
    document.getElementById("organization-name").textContent = caller.organization.name;
    document.getElementById("organization-kind").textContent = t("kinds")[caller.organization.kind] || caller.organization.kind;
    const links = Object.keys(views).filter((name) => mayUse(name, caller.organization.kind))
      .map((name) => el("li", {}, el("a", { href: "#" + name, "data-view": name }, t(name))));
    document.getElementById("views").replaceChildren(...links);
  }
  show();
}

/// Shows the view the location names (the overview by default), stopping what the previous one
/// still fetched or streamed.
async function show(focus = false) {
  leaving?.abort();
  leaving = null;
  const main = document.getElementById("view");
  if (!session.caller) { main.replaceChildren(); return; }
  const [path] = location.hash.slice(1).split("?");
  const [requested, ...rest] = (path || "overview").split("/");
  const name = Object.hasOwn(views, requested) ? requested : "overview";
  for (const link of document.querySelectorAll("#views a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const heading = el("h2", { id: "view-heading", tabindex: -1 }, t(name));
  main.replaceChildren(heading);
  if (!mayUse(name, session.caller.organization.kind)) { main.append(status(t("notAvailable"), "alert")); return; }
  const controller = new AbortController();
  leaving = controller;
  const loading = status(t("loading"));
  const body = el("div", {});
  main.append(loading, body);
  if (focus) heading.focus();
  try {
    await views[name].render(body, rest, controller.signal);
  } catch (failure) {
    if (failure.name !== "AbortError") body.replaceChildren(status(`${t("failed")} ${failure.message}`, "alert"));
  } finally {
    loading.remove();
  }
}

async function signIn(key) {
  sessionStorage.setItem("apiKey", key);
  const error = document.getElementById("sign-in-error");
  try {
    session.caller = await api("/v1/me");
    error.textContent = "";
  } catch (failure) {
    sessionStorage.removeItem("apiKey");
    session.caller = null;
    error.textContent = failure.status === 401 ? t("refused") : t("unreachable");
  }
  render();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("api-key");
    const key = input.value.trim();
    input.value = "";
    if (key) signIn(key);
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("apiKey");
    session.caller = null;
    forgetSession();
    history.replaceState(null, "", location.pathname);
    render();
    document.getElementById("api-key").focus();
  });
  document.getElementById("language").addEventListener("click", () => {
    session.language = session.language === "zh" ? "en" : "zh";
    sessionStorage.setItem("language", session.language);
    render();
  });
  window.addEventListener("hashchange", () => show(true));
  render();
  if (sessionStorage.getItem("apiKey")) signIn(sessionStorage.getItem("apiKey"));
});

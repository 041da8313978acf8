// The committee's console. Every text from the API is inserted with textContent, never as HTML;
// the API key stays in this tab's sessionStorage and travels only in the Authorization header.
"use strict";

const texts = {
  en: {
    title: "TechBank console", signInHeading: "Sign in", apiKey: "API key", signIn: "Sign in",
    signedInAs: "Signed in as", signOut: "Sign out", switchTo: "中文", refused: "This key was refused.",
    unreachable: "The server cannot be reached; try again.",
    kinds: { operator: "operator", institute: "institute", enterprise: "enterprise", broker: "broker", sub_park: "sub-park", committee: "committee" },
  },
  zh: {
    title: "TechBank 控制台", signInHeading: "登录", apiKey: "API 密钥", signIn: "登录",
    signedInAs: "当前机构", signOut: "退出", switchTo: "English", refused: "该密钥未被接受。",
    unreachable: "无法连接服务器，请重试。",
    kinds: { operator: "运营方", institute: "研究机构", enterprise: "企业", broker: "经纪人", sub_park: "分园区", committee: "管理委员会" },
  },
};

let language = (sessionStorage.getItem("language") || navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
let caller = null;

function render() {
  const t = texts[language];
  document.documentElement.lang = language === "zh" ? "zh-Hans" : "en";
  document.title = t.title;
  for (const element of document.querySelectorAll("[data-text]")) element.textContent = t[element.dataset.text];
  const switcher = document.getElementById("language");
  switcher.textContent = t.switchTo;
  switcher.setAttribute("aria-label", t.switchTo);
  document.getElementById("sign-in").hidden = caller !== null;
  document.getElementById("session").hidden = caller === null;
  if (caller) {
    document.getElementById("organization-name").textContent = caller.organization.name;
    document.getElementById("organization-kind").textContent = t.kinds[caller.organization.kind] || caller.organization.kind;
  }
}

async function api(path) {
  const key = sessionStorage.getItem("apiKey");
  const response = await fetch(path, { headers: { Authorization: "Bearer " + key, Accept: "application/json" } });
  if (!response.ok) throw Object.assign(new Error(response.statusText), { status: response.status });
  return response.json();
}

async function signIn(key) {
  sessionStorage.setItem("apiKey", key);
  const error = document.getElementById("sign-in-error");
  try {
    caller = await api("/v1/me");
    error.textContent = "";
  } catch (failure) {
    sessionStorage.removeItem("apiKey");
    caller = null;
    error.textContent = texts[language][failure.status === 401 ? "refused" : "unreachable"];
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
    caller = null;
    render();
    document.getElementById("api-key").focus();
  });
  document.getElementById("language").addEventListener("click", () => {
    language = language === "zh" ? "en" : "zh";
    sessionStorage.setItem("language", language);
    render();
  });
  render();
  if (sessionStorage.getItem("apiKey")) signIn(sessionStorage.getItem("apiKey"));
});

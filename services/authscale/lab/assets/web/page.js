// Wires the page to the flows in api.js: one section per flow, every answer added to the log.

import { BearerFlow, CookieFlow, SessionFlow } from "./api.js";

// Values that are credentials are shortened on screen: the log shows that they came, not them.
const SECRETS = new Set(["token", "access_token", "refresh_token", "csrf_token"]);

function shown(body) {
  const copy = {};
  for (const [key, value] of Object.entries(body ?? {})) {
    copy[key] = SECRETS.has(key) && typeof value === "string" ? `${value.slice(0, 8)}…` : value;
  }
  return JSON.stringify(copy);
}

function record(log, flowName, action, answer) {
  const entry = document.createElement("li");
  entry.dataset.flow = flowName;
  entry.dataset.action = action;
  entry.dataset.status = String(answer.status);
  entry.className = answer.status >= 200 && answer.status < 300 ? "ok" : "refused";
  const from = answer.replica ? ` from ${answer.replica}` : "";
  entry.textContent =
    `${flowName} · ${action}: ${answer.method} ${answer.path} → ${answer.status}${from} ${shown(answer.body)}`;
  log.prepend(entry);
}

async function main() {
  // The dev server says where the gateway is (authscale.lab.stack.web); the page's own origin is
  // the one the gateway's CORS allow-list must name.
  const config = await (await fetch("config.json", { cache: "no-store" })).json();
  document.querySelector("#api").textContent = config.api;
  document.querySelector("#origin").textContent = window.location.origin;

  const flows = {
    session: new SessionFlow(config.api),
    bearer: new BearerFlow(config.api),
    cookie: new CookieFlow(config.api),
  };
  const log = document.querySelector("#log");
  const form = document.querySelector("#credentials");

  function refreshStates() {
    for (const [name, flow] of Object.entries(flows)) {
      document.querySelector(`[data-state="${name}"]`).textContent = flow.describe();
    }
  }

  async function run(name, action) {
    const flow = flows[name];
    const answer =
      action === "login"
        ? await flow.login(form.username.value, form.password.value)
        : await flow[action]();
    if (answer) record(log, name, action, answer);
    refreshStates();
  }

  for (const button of document.querySelectorAll("button[data-action]")) {
    const section = button.closest("[data-flow]");
    button.addEventListener("click", () => run(section.dataset.flow, button.dataset.action));
  }
  form.addEventListener("submit", (event) => event.preventDefault());

  // A reload keeps the cookies: ask whether a cookie flow is still logged in.
  for (const name of ["session", "cookie"]) await run(name, "resume");
  document.body.dataset.ready = "true";
}

main();

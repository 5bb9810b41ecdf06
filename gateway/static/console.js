// Accord console: progressive enhancement only; every page works without it.
// Loaded as a file (the Content-Security-Policy allows no inline script).
"use strict";

function short(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

function left(iso) {
  if (!iso) return "no limit";
  const seconds = (new Date(iso) - new Date()) / 1000;
  if (seconds <= 0) return "expired";
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  return days ? `${days} d ${hours} h` : `${hours} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function words(name) {
  return name.replaceAll("_", " ").toLowerCase();
}

function cell(row, child) {
  const td = document.createElement("td");
  if (typeof child === "string") td.textContent = child; else td.appendChild(child);
  row.appendChild(td);
  return td;
}

function span(className, text) {
  const s = document.createElement("span");
  s.className = className;
  s.textContent = text;
  return s;
}

// ---- retention countdown -----------------------------------------------------------------

function countdowns() {
  for (const el of document.querySelectorAll(".countdown[data-until]")) {
    el.textContent = left(el.dataset.until);
  }
}

// ---- live inbox ----------------------------------------------------------------------------

function messageRow(m) {
  const row = document.createElement("tr");
  row.dataset.messageId = m.message_id;
  row.className = "new";
  const time = document.createElement("time");
  time.dateTime = m.received_at || "";
  time.textContent = short(m.received_at);
  cell(row, time);
  cell(row, m.sender);
  cell(row, words(m.type));
  cell(row, m.purpose);
  cell(row, span(`tlp tlp-${m.tlp.toLowerCase()}`, "TLP:" + m.tlp.replace("_", "+")));
  const countdown = span("countdown", left(m.retain_until));
  countdown.dataset.until = m.retain_until || "";
  cell(row, countdown);
  const due = cell(row, "");
  due.className = "due";
  if (m.status) due.appendChild(span(`status status-${m.status}`, m.status));
  const when = m.expected_by || m.reply_deadline;
  if (when) {
    const time = document.createElement("time");
    time.dateTime = when;
    time.textContent = short(when);
    const deadline = span("deadline", m.status === "overdue" ? " was due " : " due ");
    deadline.appendChild(time);
    due.appendChild(deadline);
  }
  const link = document.createElement("a");
  link.href = `/messages/${encodeURIComponent(m.message_id)}?sender=${encodeURIComponent(m.sender)}`;
  link.textContent = "Open";
  link.appendChild(span("sr", ` message ${m.message_id}`));
  cell(row, link);
  return row;
}

function liveInbox() {
  const status = document.getElementById("live-status");
  const body = document.querySelector("#messages tbody");
  if (!status || status.dataset.live !== "on" || !body || !window.EventSource) return;
  listen(status, body);
}

function listen(status, body) {
  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    status.textContent = "Updates live as messages arrive.";
    status.dataset.connected = "yes";
  });
  events.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (document.querySelector(`#messages tr[data-message-id="${CSS.escape(m.message_id)}"]`)) return;
    body.prepend(messageRow(m));
    document.getElementById("empty")?.remove();
    status.textContent = `New ${words(m.type)} from ${m.sender} (${m.purpose}).`;
  });
  const ended = () => {
    events.close();
    status.dataset.connected = "no";
    status.textContent = "Live updates have stopped: your session has ended or your account " +
      "changed. Reload the page or log in again.";
  };
  events.addEventListener("end", ended);
  events.addEventListener("error", async () => {
    status.dataset.connected = "no";
    status.textContent = "Reconnecting…";
    // An answer other than a stream (503 while the node restarts, 401 once the session is
    // over) stops EventSource for good: try again only while the session still holds.
    if (events.readyState !== EventSource.CLOSED) return;
    const me = await fetch("/api/v1/me", { credentials: "same-origin" }).catch(() => null);
    if (me && me.status === 401) ended();
    else setTimeout(() => listen(status, body), 5000);
  });
}

// ---- receipts of a sent message ------------------------------------------------------------

const FINAL = new Set(["ACCEPTED", "REJECTED", "APPROVAL-REJECTED"]);

function liveReceipts() {
  const table = document.getElementById("receipts");
  if (!table) return;
  const status = document.getElementById("receipts-status");
  const url = `/api/v1/messages/${encodeURIComponent(table.dataset.messageId)}/receipts`;
  const started = Date.now();
  async function poll() {
    let answer;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      answer = await response.json();
    } catch (err) {
      setTimeout(poll, 3000);
      return;
    }
    for (const d of answer.deliveries) {
      let row = table.querySelector(`tr[data-recipient="${CSS.escape(d.recipient)}"]`);
      if (!row) continue;
      const state = row.querySelector(".state");
      if (state.dataset.state !== d.state) {
        state.dataset.state = d.state;
        state.replaceChildren(span(`state-${d.state.toLowerCase()}`, d.state));
        status.textContent = `${d.recipient}: ${d.state}`;
      }
      row.querySelector(".reason").textContent =
        (d.reason_code || "") + (d.reason_detail ? `: ${d.reason_detail}` : "");
      row.querySelector(".at").textContent = short(d.received_at);
      row.querySelector(".digest").replaceChildren(span("", (d.content_sha256 || "").slice(0, 16)));
    }
    const done = answer.deliveries.every((d) => FINAL.has(d.state));
    if (!done && Date.now() - started < 10 * 60 * 1000) setTimeout(poll, 1500);
  }
  const pending = [...table.querySelectorAll(".state")].some((s) => !FINAL.has(s.dataset.state));
  if (pending) setTimeout(poll, 1000);
}

// ---- compose -------------------------------------------------------------------------------

const INCIDENT_TYPES = new Set(["INCIDENT_PUBLISH", "INCIDENT_UPDATE"]);

function compose() {
  const to = document.getElementById("to");
  if (to) to.addEventListener("change", () => document.getElementById("choose-recipient").submit());
  const type = document.getElementById("type");
  if (!type) return;
  const show = () => {
    const incident = INCIDENT_TYPES.has(type.value);
    document.querySelector(".body-incident").classList.toggle("hidden", !incident);
    document.querySelector(".body-liaison").classList.toggle("hidden", incident);
  };
  type.addEventListener("change", show);
  show();
}

// ---- API documentation, from /openapi.json -------------------------------------------------

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return `${schemaName(schema.items)}[]`;
  return schema.type || "";
}

async function apiDocs() {
  const root = document.getElementById("api-docs");
  if (!root) return;
  const spec = await (await fetch(root.dataset.spec)).json();
  root.replaceChildren();
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const section = document.createElement("section");
      section.className = "api-op";
      const h = document.createElement("h3");
      h.appendChild(span("method", method.toUpperCase()));
      const code = document.createElement("code");
      code.textContent = path;
      h.appendChild(code);
      section.appendChild(h);
      const p = document.createElement("p");
      p.textContent = op.description || op.summary || "";
      section.appendChild(p);
      const facts = [];
      for (const param of op.parameters || []) {
        facts.push(`${param.in} ${param.name}${param.required ? " (required)" : ""}: ${schemaName(param.schema)}`);
      }
      const body = op.requestBody?.content?.["application/json"]?.schema;
      if (body) facts.push(`body: ${schemaName(body)}`);
      for (const [status, r] of Object.entries(op.responses || {})) {
        const s = r.content?.["application/json"]?.schema;
        facts.push(`${status}: ${r.description}${s ? ` (${schemaName(s)})` : ""}`);
      }
      const list = document.createElement("ul");
      for (const f of facts) {
        const li = document.createElement("li");
        li.textContent = f;
        list.appendChild(li);
      }
      section.appendChild(list);
      root.appendChild(section);
    }
  }
  const h = document.createElement("h2");
  h.textContent = "Schemas";
  root.appendChild(h);
  for (const [name, schema] of Object.entries(spec.components?.schemas || {})) {
    const section = document.createElement("section");
    section.className = "api-op";
    const title = document.createElement("h3");
    title.textContent = name;
    section.appendChild(title);
    const list = document.createElement("ul");
    for (const [field, s] of Object.entries(schema.properties || {})) {
      const li = document.createElement("li");
      const required = (schema.required || []).includes(field) ? " (required)" : "";
      const type = s.anyOf ? s.anyOf.map(schemaName).join(" | ") : schemaName(s);
      li.textContent = `${field}${required}: ${type}${s.enum ? ` one of ${s.enum.join(", ")}` : ""}` +
        `${s.description ? ` — ${s.description}` : ""}`;
      list.appendChild(li);
    }
    section.appendChild(list);
    root.appendChild(section);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  countdowns();
  setInterval(countdowns, 30000);
  liveInbox();
  liveReceipts();
  compose();
  apiDocs();
});

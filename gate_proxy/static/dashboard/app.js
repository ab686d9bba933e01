// Gate Proxy dashboard. Plain JS, no build step, no library.
// Every piece of intent data reaches the DOM through textContent (via el()), never innerHTML.
"use strict";

(() => {
  const PENDING = "pending_approval";
  const REASONS = {
    manual_review_required: "Policy requires a human review",
    record_threshold_exceeded: "Record count above the auto-approve limit",
    tool_review_required: "The policy's tools.require_approval names this MCP tool",
  };

  const state = {
    csrf: null,
    principal: null,
    filter: PENDING,
    clockOffset: 0, // server time minus browser time, in ms
    cards: new Map(), // intentId -> {view, refs}
    source: null,
    refreshTimer: null,
    target: null, // intent id from #intent=<id>
  };

  const $ = (id) => document.getElementById(id);

  // Build an element: attributes as strings, children as nodes or text (text nodes only).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // -- HTTP --------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.code = (body && body.error) || "error";
    }
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    const init = { method: options.method || "GET", headers, credentials: "same-origin" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (init.method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    const response = await fetch(path, init);
    let body = null;
    if (response.status !== 204) {
      try { body = await response.json(); } catch (_) { body = null; }
    }
    if (!response.ok) {
      if (response.status === 401 && path !== "/dashboard/login") signedOut(body && body.message);
      throw new ApiError(response.status, body);
    }
    return body;
  }

  function syncClock(serverTime) {
    const server = Date.parse(serverTime);
    if (!Number.isNaN(server)) state.clockOffset = server - Date.now();
  }

  // -- sign-in -------------------------------------------------------------------------------------

  function showLogin(message) {
    stopStream();
    state.csrf = null;
    state.principal = null;
    $("queue-view").hidden = true;
    $("who").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message || "";
    setLive("offline");
    $("login-key").focus();
  }

  function signedOut(message) {
    if (state.principal) showLogin(message || "Your session ended. Sign in again.");
  }

  async function start(session) {
    state.csrf = session.csrfToken;
    state.principal = session.principal;
    syncClock(session.serverTime);
    $("login-view").hidden = true;
    $("queue-view").hidden = false;
    $("who").hidden = false;
    $("who-name").textContent = `${session.principal.name} (${session.principal.role})`;
    await loadQueue();
    openStream();
    if (state.target) focusTarget();
  }

  async function onLogin(event) {
    event.preventDefault();
    const input = $("login-key");
    const key = input.value.trim();
    $("login-error").textContent = "";
    if (!key) {
      $("login-error").textContent = "Enter a reviewer or admin key.";
      return;
    }
    $("login-submit").disabled = true;
    try {
      const session = await api("/dashboard/login", { method: "POST", body: { key } });
      input.value = ""; // the key is not kept anywhere in the page
      await start(session);
      $("queue-title").focus();
    } catch (error) {
      $("login-error").textContent = error.message;
      input.select();
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function onLogout() {
    try { await api("/dashboard/logout", { method: "POST" }); } catch (_) { /* signed out anyway */ }
    clearQueue();
    showLogin("Signed out.");
  }

  // -- live stream -------------------------------------------------------------------------------

  function setLive(mode) {
    const node = $("live");
    node.dataset.state = mode;
    node.textContent = { live: "live", reconnecting: "reconnecting…", offline: "offline" }[mode];
  }

  function openStream() {
    stopStream();
    const source = new EventSource("/dashboard/events");
    state.source = source;
    source.addEventListener("hello", () => {
      setLive("live");
      scheduleRefresh(0); // catch up on anything missed while disconnected
    });
    source.addEventListener("heartbeat", (event) => {
      setLive("live");
      syncClock(JSON.parse(event.data).at);
    });
    source.addEventListener("intent", (event) => {
      const message = JSON.parse(event.data);
      applyEvent(message.event, message.intent, message.actor);
    });
    source.addEventListener("signed_out", (event) => {
      stopStream();
      signedOut(`Signed out: ${JSON.parse(event.data).reason}`);
    });
    source.addEventListener("error", () => {
      if (state.source !== source) return;
      setLive("reconnecting");
      // A 401 closes an EventSource for good: find out whether the session is gone.
      if (source.readyState === EventSource.CLOSED) {
        api("/dashboard/api/session").then(openStream, () => {});
      }
    });
  }

  function stopStream() {
    if (state.source) state.source.close();
    state.source = null;
  }

  function applyEvent(event, view, actor) {
    const known = state.cards.has(view.intentId);
    if (state.filter === PENDING && view.status !== PENDING && view.intentId !== state.target) {
      if (known) {
        removeCard(view.intentId);
        announce(`${view.intentId} ${describe(event, view)} by ${actor}.`);
      }
    } else {
      upsertCard(view, !known);
      if (!known && view.status === PENDING) announce(`New: ${view.agent} → ${view.destination}.`);
    }
    scheduleRefresh(400); // the held flag settles a moment after an intent appears
  }

  function describe(event, view) {
    if (event === "expired" || view.status === "expired") return "expired";
    return view.status.replace(/_/g, " ");
  }

  function announce(text) {
    $("announce").textContent = text;
  }

  // -- the queue ---------------------------------------------------------------------------------

  function scheduleRefresh(delay) {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(() => loadQueue().catch(() => {}), delay);
  }

  async function loadQueue() {
    const query = state.filter === PENDING ? PENDING : "all";
    const data = await api(`/dashboard/api/intents?status=${encodeURIComponent(query)}`);
    syncClock(data.serverTime);
    const seen = new Set();
    for (const view of data.intents) {
      seen.add(view.intentId);
      upsertCard(view, false);
    }
    for (const id of [...state.cards.keys()]) {
      if (!seen.has(id) && id !== state.target) removeCard(id);
    }
    // Newest first, as the server sends them. Move only cards that are out of place: moving
    // a node blurs whatever has focus inside it, and keyboard users must not lose their place.
    const list = $("queue");
    const focused = document.activeElement;
    let cursor = list.firstElementChild;
    for (const view of data.intents) {
      const li = state.cards.get(view.intentId).refs.li;
      if (li === cursor) cursor = cursor.nextElementSibling;
      else list.insertBefore(li, cursor);
    }
    if (focused && focused !== document.activeElement && list.contains(focused)) focused.focus();
    updateCount();
  }

  function clearQueue() {
    state.cards.clear();
    $("queue").replaceChildren();
    updateCount();
  }

  function updateCount() {
    const count = state.cards.size;
    $("queue-count").textContent = String(count);
    $("empty").hidden = count > 0;
    $("empty").textContent =
      state.filter === PENDING ? "Nothing is waiting for review." : "No intents yet.";
  }

  function upsertCard(view, fresh) {
    const existing = state.cards.get(view.intentId);
    if (existing) {
      existing.view = view;
      updateCard(existing.refs, view);
      return;
    }
    const refs = buildCard(view);
    state.cards.set(view.intentId, { view, refs });
    if (fresh) refs.li.dataset.fresh = "true";
    $("queue").prepend(refs.li);
    updateCard(refs, view);
    updateCount();
  }

  function removeCard(id) {
    const card = state.cards.get(id);
    if (!card) return;
    const hadFocus = card.refs.li.contains(document.activeElement);
    const next = card.refs.li.nextElementSibling || card.refs.li.previousElementSibling;
    card.refs.li.remove();
    state.cards.delete(id);
    updateCount();
    if (hadFocus) {
      // Keep keyboard users in the queue rather than dropping focus to <body>.
      const button = next && next.querySelector("button:not([disabled])");
      (button || $("queue-title")).focus();
    }
  }

  function fact(label, value, options = {}) {
    const dd = el("dd", { class: options.mono ? "mono" : null }, value);
    return { node: el("div", { class: `fact${options.wide ? " fact-wide" : ""}` },
      el("dt", { text: label }), dd), dd };
  }

  function buildCard(view) {
    const id = view.intentId;
    const titleId = `title-${id}`;
    const refs = {};
    refs.title = el("h3", { class: "card-title", id: titleId });
    refs.status = el("span", { class: "badge badge-status" });
    refs.risk = el("span", { class: "badge" });
    refs.held = el("span", { class: "badge" });
    const facts = {
      agent: fact("Agent", ""),
      behalf: fact("On behalf of", ""),
      destination: fact("Destination", ""),
      policy: fact("Policy", ""),
      request: fact("Request", "", { mono: true, wide: true }),
      records: fact("Records", ""),
      risk: fact("Risk score", ""),
      reason: fact("Why pending", ""),
      remaining: fact("Time remaining", ""),
      approvals: fact("Approvals", ""),
      connection: fact("Connection", ""),
      hash: fact("Review hash", "", { mono: true, wide: true }),
    };
    refs.facts = facts;
    refs.countdown = el("span", { class: "countdown" });
    facts.remaining.dd.replaceChildren(refs.countdown);
    refs.connectionText = el("span", { class: "connection-text" });
    refs.holdCountdown = el("span", { class: "hold-countdown" });
    facts.connection.dd.replaceChildren(refs.connectionText, refs.holdCountdown);
    refs.previewLabel = el("p", { class: "preview-label", text: "Payload preview (redacted)" });
    refs.preview = el("pre", { class: "preview", tabindex: "0", "aria-label": "Payload preview" });
    refs.error = el("p", { class: "card-error", role: "alert" });
    refs.info = el("p", { class: "card-info" });

    refs.approve = el("button", { type: "button", class: "button button-approve",
      onclick: () => approve(id) }, "Approve");
    refs.rejectOpen = el("button", { type: "button", class: "button button-reject",
      "aria-expanded": "false", "aria-controls": `reject-${id}`,
      onclick: () => toggleReject(id, true) }, "Reject…");
    refs.reason = el("textarea", { id: `reason-${id}`, name: "reason", maxlength: "2000",
      required: true });
    refs.rejectConfirm = el("button", { type: "submit", class: "button button-danger" },
      "Reject");
    refs.rejectForm = el("form", { id: `reject-${id}`, class: "reject-form", hidden: true,
      onsubmit: (event) => { event.preventDefault(); reject(id); } },
      el("label", { for: `reason-${id}`, text: "Reason for rejecting (the agent sees it)" }),
      refs.reason,
      el("div", { class: "actions" }, refs.rejectConfirm,
        el("button", { type: "button", class: "button",
          onclick: () => toggleReject(id, false) }, "Cancel")));
    refs.actions = el("div", { class: "actions" }, refs.approve, refs.rejectOpen);

    refs.auditList = el("ol", { class: "audit-list" });
    refs.audit = el("details", { class: "audit" },
      el("summary", {}, "Audit trail"), refs.auditList);
    refs.audit.addEventListener("toggle", () => {
      if (refs.audit.open) loadAudit(id);
    });

    const factList = el("dl", { class: "facts" }, Object.values(facts).map((f) => f.node));
    refs.li = el("li", { class: "card", id: `intent-${id}`, "aria-labelledby": titleId },
      el("div", { class: "card-head" }, refs.title,
        el("span", { class: "card-id", text: id }),
        el("span", { class: "badges" }, refs.status, refs.risk, refs.held)),
      factList,
      refs.previewLabel,
      refs.preview,
      refs.error, refs.info, refs.actions, refs.rejectForm, refs.audit);
    return refs;
  }

  function updateCard(refs, view) {
    const f = refs.facts;
    const pending = view.status === PENDING;
    refs.li.dataset.status = view.status;
    // An MCP tool call names its tool: the reviewer approves that call, with these arguments.
    refs.title.textContent = view.tool ?
      `${view.agent} → tool \`${view.tool}\` on ${view.destination}` :
      `${view.agent} → ${view.destination}`;
    refs.previewLabel.textContent = view.tool ?
      `Arguments of tool \`${view.tool}\` (redacted)` : "Payload preview (redacted)";
    refs.status.textContent = view.status.replace(/_/g, " ");
    refs.status.className = `badge badge-status status-${view.status}`;
    refs.risk.textContent = `risk ${view.risk_level}`;
    refs.risk.className = `badge risk-${view.risk_level}`;
    refs.held.textContent = view.held ? "connection held" : "not held";
    refs.held.className = `badge ${view.held ? "badge-held" : "badge-free"}`;
    f.agent.dd.textContent = `${view.agent} (${view.agentId})`;
    f.behalf.dd.textContent = view.on_behalf_of || "—";
    f.destination.dd.textContent = view.destination;
    f.policy.dd.textContent = view.policy;
    f.request.dd.textContent = view.tool ? `MCP tools/call ${view.tool} · ${view.url || ""}` :
      view.method ? `${view.method} ${view.url || ""}` : `API proposal (${view.source})`;
    f.records.dd.textContent = view.recordCount === null || view.recordCount === undefined ?
      "—" : String(view.recordCount);
    f.risk.dd.textContent = `${Number(view.risk_score).toFixed(2)} (${view.risk_level})`;
    const code = view.reason_code || "";
    f.reason.dd.textContent = REASONS[code] ? `${REASONS[code]} (${code})` : code || "—";
    refs.countdown.dataset.expires = pending && view.expiresAt ? view.expiresAt : "";
    if (!pending) refs.countdown.textContent = `closed (${view.status.replace(/_/g, " ")})`;
    const required = view.requireApprovals || 1;
    f.approvals.dd.textContent = required > 1 ?
      `${view.approvals} of ${required} distinct reviewers` : "1 reviewer needed";
    // The hold has its own deadline (hold_timeout_ms), usually sooner than the review's.
    refs.connectionText.textContent = view.held ?
      "Held open: the agent is waiting for this decision; the hold ends in " :
      "Not held (the agent retries)";
    refs.holdCountdown.dataset.expires = pending && view.held && view.heldUntil ?
      view.heldUntil : "";
    if (!refs.holdCountdown.dataset.expires) refs.holdCountdown.textContent = "";
    f.hash.dd.textContent = view.reviewHash;
    refs.preview.textContent = view.payload && view.payload.preview !== null &&
      view.payload.preview !== undefined ? view.payload.preview : "(no payload)";

    const voted = state.principal && view.voters.includes(state.principal.id);
    refs.actions.hidden = !pending;
    if (!pending) refs.rejectForm.hidden = true;
    refs.approve.disabled = !pending || voted;
    refs.info.textContent = voted ?
      `You approved. Waiting for ${required - view.approvals} more reviewer(s).` :
      (!pending && view.decidedBy ? `Decided by ${view.decidedBy}.` : "");
    tickCard(refs);
    if (refs.audit.open) loadAudit(view.intentId);
  }

  function tickCard(refs) {
    tickCountdown(refs.countdown, "expiring now");
    tickCountdown(refs.holdCountdown, "a moment (ending now)");
  }

  function tickCountdown(node, endedText) {
    const expires = node.dataset.expires;
    if (!expires) return;
    const left = Date.parse(expires) - (Date.now() + state.clockOffset);
    if (left <= 0) {
      node.textContent = endedText;
      node.dataset.urgent = "true";
      return;
    }
    const seconds = Math.floor(left / 1000);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const pad = (n) => String(n).padStart(2, "0");
    node.textContent = h > 0 ? `${h}h ${pad(m)}m ${pad(s)}s` : `${m}m ${pad(s)}s`;
    node.dataset.urgent = seconds < 60 ? "true" : "false";
  }

  // -- decisions ---------------------------------------------------------------------------------

  function busy(refs, on) {
    for (const button of [refs.approve, refs.rejectOpen, refs.rejectConfirm]) {
      button.disabled = on;
    }
  }

  function showError(refs, error) {
    let text = error.message;
    if (error.status === 409 && error.code === "review_hash_mismatch") {
      text = "409 Conflict: this intent no longer matches what you reviewed. " +
        "Nothing was decided; reload it and review again.";
    } else if (error.status) {
      text = `${error.status} ${error.code}: ${error.message}`;
    }
    refs.error.textContent = text;
  }

  async function decide(id, action, extra) {
    const card = state.cards.get(id);
    if (!card) return;
    const { refs, view } = card;
    refs.error.textContent = "";
    busy(refs, true);
    try {
      // The hash sent is the one on screen: the approval is bound to what was reviewed.
      const body = { reviewHash: view.reviewHash, ...extra };
      const result = await api(`/dashboard/api/intents/${encodeURIComponent(id)}/${action}`,
        { method: "POST", body });
      const updated = result.intent;
      if (updated.status === PENDING) {
        upsertCard(updated, false);
        announce(`Your approval of ${id} is recorded.`);
      } else {
        announce(`${id} ${updated.status.replace(/_/g, " ")}.`);
        if (state.filter === PENDING && id !== state.target) removeCard(id);
        else upsertCard(updated, false);
      }
    } catch (error) {
      showError(refs, error);
    } finally {
      if (state.cards.has(id)) {
        busy(refs, false);
        const current = state.cards.get(id).view;
        refs.approve.disabled = current.status !== PENDING ||
          current.voters.includes(state.principal && state.principal.id);
      }
    }
  }

  function approve(id) {
    return decide(id, "approve", {});
  }

  function toggleReject(id, open) {
    const { refs } = state.cards.get(id);
    refs.rejectForm.hidden = !open;
    refs.rejectOpen.setAttribute("aria-expanded", String(open));
    if (open) refs.reason.focus();
    else refs.rejectOpen.focus();
  }

  function reject(id) {
    const { refs } = state.cards.get(id);
    const reason = refs.reason.value.trim();
    if (!reason) {
      refs.error.textContent = "Give a reason for rejecting.";
      refs.reason.focus();
      return undefined;
    }
    return decide(id, "reject", { reason });
  }

  // -- audit trail ---------------------------------------------------------------------------------

  async function loadAudit(id) {
    const card = state.cards.get(id);
    if (!card) return;
    const list = card.refs.auditList;
    try {
      const data = await api(`/dashboard/api/intents/${encodeURIComponent(id)}`);
      list.replaceChildren(...data.audit.map((event) => {
        const meta = Object.keys(event.metadata || {}).length ?
          JSON.stringify(event.metadata, null, 1) : "";
        return el("li", {},
          el("span", { class: "audit-type", text: event.eventType }),
          ` by ${event.actor} at `,
          el("time", { datetime: event.createdAt, text: event.createdAt }),
          meta ? el("span", { class: "audit-meta", text: meta }) : null);
      }));
    } catch (error) {
      list.replaceChildren(el("li", { class: "card-error", text: error.message }));
    }
  }

  // -- deep links (#intent=<id>, used by notifications) ------------------------------------------

  function readTarget() {
    const match = /^#intent=([A-Za-z0-9_-]{1,64})$/.exec(window.location.hash);
    state.target = match ? match[1] : null;
  }

  async function focusTarget() {
    const id = state.target;
    if (!id) return;
    if (!state.cards.has(id)) {
      try {
        const data = await api(`/dashboard/api/intents/${encodeURIComponent(id)}`);
        upsertCard(data.intent, false);
      } catch (error) {
        announce(`Intent ${id}: ${error.message}`);
        return;
      }
    }
    const { refs } = state.cards.get(id);
    refs.li.dataset.target = "true";
    refs.audit.open = true;
    refs.li.scrollIntoView({ block: "start" });
  }

  // -- boot ----------------------------------------------------------------------------------------

  function boot() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("refresh").addEventListener("click", () => loadQueue().catch((e) => announce(e.message)));
    $("filter").addEventListener("change", (event) => {
      state.filter = event.target.value;
      $("queue-label").textContent =
        state.filter === PENDING ? "Pending approvals" : "Recent intents";
      clearQueue();
      loadQueue().catch((e) => announce(e.message));
    });
    window.addEventListener("hashchange", () => {
      readTarget();
      if (state.principal) focusTarget();
    });
    setInterval(() => {
      for (const { refs } of state.cards.values()) tickCard(refs);
    }, 1000);
    // Held flags change without an intent event: a slow poll keeps them honest.
    setInterval(() => { if (state.principal) scheduleRefresh(0); }, 15000);

    readTarget();
    const params = new URLSearchParams(window.location.search);
    const failed = params.get("login");
    if (failed) history.replaceState(null, "", window.location.pathname + window.location.hash);
    api("/dashboard/api/session").then(start, () => {
      showLogin(failed ? `Sign-in failed (${failed}).` : "");
    });
  }

  boot();
})();

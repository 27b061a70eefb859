// leaderpool dashboard: renders /api/events' "status" documents (the `status --json` shape),
// each pool's history from /api/pools/POOL/history, and the connection and Redis state.
// No framework and no build step; every text goes in through textContent (names come from Redis).
"use strict";

(() => {
  const HISTORY_COUNT = 15;
  const RECONNECT_MS = 2000;
  const state = {
    info: { allow_actions: false, prefix: "", redis: "" },
    status: null, // the last status document
    receivedAt: 0, // performance.now() when it arrived: lease countdowns start there
    connected: false,
    redis: { state: "unknown" },
    histories: new Map(), // pool -> transitions (oldest first)
    historyKeys: new Map(), // pool -> what the pool looked like when its history was read
    longestLease: new Map(), // "pool/member" -> the longest lease seen (the bar's full width)
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key === "onclick") node.addEventListener("click", value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // ---- formatting ----

  function seconds(ms) {
    return ms < 0 ? "-" : ms < 10000 ? (ms / 1000).toFixed(1) + "s" : duration(ms / 1000);
  }

  function duration(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d" + String(Math.floor((s % 86400) / 3600)).padStart(2, "0") + "h";
  }

  function clock(unixSeconds) {
    const d = new Date(unixSeconds * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  }

  function metaText(meta) {
    const keys = Object.keys(meta || {}).sort();
    return keys.length ? keys.map((k) => `${k}=${meta[k]}`).join(", ") : "-";
  }

  // ---- connection and Redis state ----

  function setBadge(id, cls, text, stateName) {
    const badge = $(id);
    badge.className = "badge " + cls;
    badge.textContent = text;
    badge.dataset.state = stateName;
  }

  function showState() {
    if (state.connected) setBadge("connection", "badge-ok", "live", "live");
    else setBadge("connection", "badge-bad", "disconnected", "lost");
    if (state.redis.state === "ok") setBadge("redis", "badge-ok", "Redis: ok", "ok");
    else if (state.redis.state === "lost") setBadge("redis", "badge-bad", "Redis: lost", "lost");
    else setBadge("redis", "badge-wait", "Redis: …", "unknown");
    const banner = $("banner");
    let text = "";
    if (!state.connected) {
      text = "Lost the connection to the dashboard server: reconnecting… (what is shown may be out of date)";
    } else if (state.redis.state === "lost") {
      text = `The dashboard server lost Redis (${state.redis.error}): retrying; what is shown is the last state read`;
    }
    banner.textContent = text;
    banner.hidden = !text;
    banner.dataset.kind = !state.connected ? "server" : state.redis.state === "lost" ? "redis" : "";
    document.body.classList.toggle("stale-data", Boolean(text));
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("open", () => {
      state.connected = true;
      state.historyKeys.clear(); // events were missed while away: read every history again
      showState();
    });
    source.addEventListener("error", () => {
      state.connected = false;
      showState();
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, RECONNECT_MS); // the browser gave up (an error answer): try again ourselves
      }
    });
    source.addEventListener("status", (event) => {
      state.status = JSON.parse(event.data);
      state.receivedAt = performance.now();
      render();
      refreshHistories();
    });
    source.addEventListener("redis", (event) => {
      state.redis = JSON.parse(event.data);
      showState();
    });
  }

  // ---- actions ----

  function toast(text, bad) {
    const box = $("toast");
    box.textContent = text;
    box.className = "toast" + (bad ? " bad" : "");
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (box.hidden = true), 8000);
  }

  async function act(button, path) {
    button.disabled = true;
    try {
      const response = await fetch(path, { method: "POST", headers: { "X-Leaderpool-Action": "1" } });
      const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
      toast(body.ok ? body.message : body.error || `HTTP ${response.status}`, !body.ok);
    } catch (err) {
      toast(`the dashboard server did not answer: ${err}`, true);
    } finally {
      button.disabled = false;
    }
  }

  function poolPath(pool) {
    return `/api/pools/${encodeURIComponent(pool)}`;
  }

  // ---- rendering ----

  function render() {
    const main = $("pools");
    const pools = (state.status && state.status.pools) || [];
    if (!pools.length) {
      main.replaceChildren(el("p", { class: "empty", text: `No pools under prefix "${state.info.prefix}" yet.` }));
      return;
    }
    main.replaceChildren(...pools.map(renderPool));
    tick();
  }

  function renderPool(p) {
    const leader = p.leader;
    const actions = state.info.allow_actions;
    const head = el(
      "div",
      { class: "pool-head" },
      el("h2", { text: p.pool }),
      leader
        ? el("span", { class: "fact" }, "leader ", el("span", { class: "leader-name", "data-role": "leader", text: leader.member }))
        : el("span", { class: "no-leader", "data-role": "leader", text: "no leader" }),
      leader ? el("span", { class: "fact" }, "term ", el("b", { "data-role": "term", text: String(leader.term) })) : null,
      leader
        ? el("span", { class: "fact" }, "lease ", el("b", { class: "countdown", "data-lease-ms": String(leader.lease_ms) }), " left")
        : null,
      el("span", { class: "fact", text: `${p.members.length} member(s)` }),
      p.singletons ? el("span", { class: "fact", "data-role": "singletons", text: singletonsFact(p.singletons) }) : null,
      p.stale_since ? el("span", { class: "no-leader", text: `stale since ${new Date(p.stale_since * 1000).toLocaleString()}: no member is alive` }) : null,
      el("span", { class: "spacer" }),
      actions && leader
        ? el("button", {
            "data-action": "resign",
            text: "resign leader",
            title: "hand the lead to the next member",
            onclick: (e) => act(e.currentTarget, `${poolPath(p.pool)}/resign`),
          })
        : null,
    );
    const rows = p.members.map((m) => {
      const key = `${p.pool}/${m.member}`;
      state.longestLease.set(key, Math.max(state.longestLease.get(key) || 0, m.lease_ms));
      return el(
        "tr",
        { "data-member": m.member, class: m.leader ? "is-leader" : "" },
        el("td", { class: "member", text: m.member }),
        el("td", { text: m.node }),
        el("td", { text: m.host }),
        el("td", { text: String(m.pid) }),
        el("td", { class: "uptime", "data-started": String(m.started_at) }),
        el("td", { text: String(m.priority) }),
        el(
          "td",
          {},
          el("span", { class: "lease-bar" }, el("span", { "data-bar-ms": String(m.lease_ms), "data-bar-of": key })),
          el("span", { class: "countdown", "data-lease-ms": String(m.lease_ms) }),
        ),
        el("td", { class: "meta", text: metaText(m.meta) }),
        el("td", incarnationCell(m.incarnation)),
        p.singletons ? el("td", singletonsCell(m.singletons || [])) : null,
        actions
          ? el(
              "td",
              {},
              el("button", {
                "data-action": "evict",
                text: "evict",
                title: "remove this member (a live one rejoins as the youngest)",
                onclick: (e) => act(e.currentTarget, `${poolPath(p.pool)}/members/${encodeURIComponent(m.member)}/evict`),
              }),
            )
          : null,
      );
    });
    const header = ["member", "node", "host", "pid", "uptime", "priority", "lease left", "metadata", "incarnation"];
    if (p.singletons) header.push("singletons");
    if (actions) header.push("");
    const table = p.members.length
      ? el("table", {}, el("thead", {}, el("tr", {}, ...header.map((h) => el("th", { text: h })))), el("tbody", {}, ...rows))
      : el("p", { class: "empty", text: "no live member" });
    const history = el("div", { class: "history" }, el("h3", { text: "history (newest first)" }), renderHistory(p.pool));
    return el("section", { class: "pool" + (p.stale_since ? " stale" : ""), "data-pool": p.pool }, head, el("div", { class: "cols" }, el("div", {}, table), history));
  }

  // The placement: which singletons a member runs, each with its term.
  function singletonsCell(held) {
    const text = held.map((s) => `${s.name} (term ${s.term})`).join(", ");
    return { class: "singletons", "data-singletons": String(held.length), text: held.length ? `${held.length}: ${text}` : "-" };
  }

  function singletonsFact(all) {
    const idle = all.filter((s) => !s.member).length;
    return `${all.length} singleton(s)` + (idle ? `, ${idle} not running` : "");
  }

  // Which process runs the member id: its token (shortened; the whole one in the title), host,
  // pid and since when (the incarnation's first join).
  function incarnationCell(inc) {
    if (!inc) return { class: "incarnation", text: "-" };
    const since = new Date(inc.since * 1000).toLocaleString();
    return {
      class: "incarnation",
      text: `${inc.id.slice(0, 8)} · pid ${inc.pid}@${inc.host} since ${since}`,
      title: `incarnation ${inc.id}: pid ${inc.pid} on ${inc.host}, since ${since}`,
    };
  }

  function renderHistory(pool) {
    const rows = state.histories.get(pool);
    if (!rows) return el("p", { class: "empty", text: "reading…" });
    if (!rows.length) return el("p", { class: "empty", text: "no transitions recorded" });
    const items = rows
      .slice()
      .reverse()
      .map((r) =>
        el(
          "li",
          { class: `ev-${r.event}`, "data-event": r.event },
          el("time", { text: r.t === null ? "(time unknown)" : clock(r.t) }),
          `${r.event} term ${r.term} ${r.member}` + (r.reason ? ` (${r.reason})` : ""),
        ),
      );
    return el("ul", { class: "timeline" }, ...items);
  }

  function historyKey(p) {
    return JSON.stringify([p.leader && p.leader.member, p.leader && p.leader.term, p.members.map((m) => m.member)]);
  }

  async function refreshHistories() {
    const pools = (state.status && state.status.pools) || [];
    for (const p of pools) {
      const key = historyKey(p);
      if (state.historyKeys.get(p.pool) === key) continue;
      state.historyKeys.set(p.pool, key);
      try {
        const response = await fetch(`${poolPath(p.pool)}/history?count=${HISTORY_COUNT}`);
        if (!response.ok) continue;
        const body = await response.json();
        state.histories.set(p.pool, body.transitions);
        const section = document.querySelector(`section[data-pool="${CSS.escape(p.pool)}"] .history`);
        if (section) section.replaceChildren(el("h3", { text: "history (newest first)" }), renderHistory(p.pool));
      } catch (err) {
        state.historyKeys.delete(p.pool); // try again with the next update
      }
    }
  }

  // Lease countdowns and uptimes move between updates, counted from when the status arrived.
  function tick() {
    const elapsed = performance.now() - state.receivedAt;
    for (const node of document.querySelectorAll("[data-lease-ms]")) {
      node.textContent = seconds(Math.max(0, Number(node.dataset.leaseMs) - elapsed));
    }
    for (const node of document.querySelectorAll("[data-bar-ms]")) {
      const full = state.longestLease.get(node.dataset.barOf) || 1;
      const left = Math.max(0, Number(node.dataset.barMs) - elapsed);
      node.style.width = `${Math.min(100, (100 * left) / full)}%`;
    }
    for (const node of document.querySelectorAll("[data-started]")) {
      node.textContent = duration(Date.now() / 1000 - Number(node.dataset.started));
    }
  }

  async function start() {
    try {
      const response = await fetch("/api/info");
      state.info = await response.json();
    } catch (err) {
      // the event stream shows the connection state; actions stay off
    }
    $("where").textContent = `${state.info.redis} · prefix ${state.info.prefix} · actions ${state.info.allow_actions ? "on" : "off"}`;
    showState();
    connect();
    setInterval(tick, 250);
  }

  start();
})();

/* The Service Status page: one WebSocket (reconnecting with backoff) that fills the server-rendered skeleton.
 * Every piece of text from the service reaches the DOM through textContent, never parsed as markup.
 */
(function () {
  "use strict";

  var LOG_MAX_LINES = 1000;          // the DOM keeps this many lines; older ones scroll out
  var RETRY_MIN_MS = 500;            // first WebSocket retry; doubles up to RETRY_MAX_MS, with jitter
  var RETRY_MAX_MS = 15000;
  var CLOSE_FORBIDDEN = 4403;        // the consumer's "not signed in / no permission"
  var LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };
  var BOTTOM_SLACK_PX = 8;           // "at the bottom" for autoscroll, despite sub-pixel rounding

  var root = document.getElementById("service-status");
  if (!root) { return; }
  var socketPath = root.getAttribute("data-socket-path");
  var canControl = root.getAttribute("data-can-control") === "true";
  var historyUrl = root.getAttribute("data-history-url") || "";  // ".../runners/RUNNER/history"

  function field(name) { return root.querySelector('[data-field="' + name + '"]'); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function setText(name, text) { var node = field(name); if (node) { node.textContent = text == null ? "" : String(text); } }

  // --- formatting ---

  function toDate(value) {
    if (value === null || value === undefined || value === "") { return null; }
    var date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return isNaN(date.getTime()) ? null : date;
  }
  // One format on every page, as the server renders it (and feeds.js): "2026-12-04 13:34:08 UTC", never the
  // browser's locale or zone.
  function formatTime(value) {
    var date = toDate(value);
    return date ? date.toISOString().slice(0, 19).replace("T", " ") + " UTC" : "—";
  }
  function formatClock(value) {
    var date = toDate(value);
    return date ? date.toISOString().slice(11, 19) + " UTC" : "";
  }
  function formatDuration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) { return ""; }
    if (seconds < 1) { return Math.round(seconds * 1000) + " ms"; }
    if (seconds < 120) { return seconds.toFixed(1) + " s"; }
    if (seconds < 7200) { return Math.round(seconds / 60) + " min"; }
    if (seconds < 172800) { return (seconds / 3600).toFixed(1) + " h"; }
    return (seconds / 86400).toFixed(1) + " d";
  }
  function relative(value) {
    var date = toDate(value);
    if (!date) { return ""; }
    var delta = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(delta) < 1) { return "now"; }
    return delta > 0 ? "in " + formatDuration(delta) : formatDuration(-delta) + " ago";
  }

  // --- state ---

  var model = { snapshot: null, link: null, baseSeq: 0 };
  var runnerRows = {};  // name -> {row, cells...}
  var stale = true;     // the service's values on the page are not current (service or page socket away)

  // What marks a value the service sent as no longer current: when the web node last heard from the service.
  function staleNote() {
    if (!stale || !serviceInfo()) { return ""; }
    var seen = model.link && model.link.lastSeen;
    return seen ? "stale — last seen " + formatTime(seen) : "stale";
  }

  function serviceInfo() { return (model.snapshot && model.snapshot.service) || null; }

  // --- rendering: summary ---

  function renderSummary() {
    var link = model.link || {};
    var snap = model.snapshot;
    var info = serviceInfo() || {};
    var state = "connecting…", reason = "", cls = "tag pending", pageState = "connecting…";
    if (link.status === "connected") {
      var serviceState = (snap && snap.serviceState) || "running";
      state = serviceState;
      cls = serviceState === "running" ? "tag ok" : "tag pending";
      pageState = link.subscribed ? "live" : "connected";
      if (!link.subscribed && link.streamError) { reason = "status stream: " + link.streamError; }
    } else if (link.status === "unreachable") {
      state = "not reachable: " + (link.reason || "unknown reason");
      cls = "tag bad";
      pageState = "service not reachable";
    } else if (link.status === "key-mismatch") {
      state = "key mismatch";
      reason = "the service holds another messenger key";
      cls = "tag bad";
      pageState = "key mismatch";
    } else if (link.status === "closed") {
      state = "not connected";
      cls = "tag";
    }
    setText("state", state);
    setText("state-reason", reason);
    var tag = field("page-state");
    if (!socketOpen()) {
      pageState = pageProblem || "page reconnecting…";
      cls = "tag bad";
    }
    tag.className = cls;
    tag.textContent = pageState;
    var wasStale = stale;
    stale = link.status !== "connected" || !socketOpen();
    root.classList.toggle("is-stale", stale);
    var note = staleNote();
    ["node-stale", "uptime-stale"].forEach(function (name) {
      var node = field(name);
      if (node) { node.textContent = note; node.hidden = !note; }
    });
    var restart = root.querySelector('button[data-action="restart"]');
    if (restart) { restart.disabled = stale; }
    if (wasStale !== stale) { Object.keys(runnerRows).forEach(function (name) { renderRunnerActions(runnerRows[name]); }); }

    setText("node", info.node || "—");
    setText("version", info.version ? "version " + info.version : "");
    setText("endpoint", link.endpoint || "—");
    setText("address", link.address ? "(" + link.address + ")" : "");
    setText("rtt", typeof link.rttMs === "number" ? link.rttMs.toFixed(link.rttMs < 10 ? 2 : 1) + " ms" : "—");
    setText("fingerprint", link.fingerprint || "—");
    var match = field("fingerprint-match");
    if (link.fingerprintMatch === true) {
      match.className = "tag ok"; match.textContent = "matches the service";
    } else if (link.fingerprintMatch === false) {
      match.className = "tag bad";
      match.textContent = link.serviceFingerprint ? "service has " + link.serviceFingerprint : "does not match the service";
    } else {
      match.className = "muted small"; match.textContent = "service's key unknown";
    }
    setText("uptime", typeof info.uptime === "number" ? formatDuration(info.uptime) : "—");
    renderMessenger(info);
  }

  function renderMessenger(info) {
    var stats = info.messenger || {};
    var rejects = stats.rejects && typeof stats.rejects === "object" ? stats.rejects : {};
    var list = field("rejects");
    list.textContent = "";
    var names = Object.keys(rejects).sort();
    if (!names.length) {
      list.appendChild(el("dt", "", "Rejects"));
      list.appendChild(el("dd", "", serviceInfo() ? "none" : "—"));
    }
    names.forEach(function (name) {
      list.appendChild(el("dt", "", name));
      list.appendChild(el("dd", "", rejects[name]));
    });
    setText("connections-open", typeof stats.connections_open === "number" ? stats.connections_open : "—");
    setText("subscribers", typeof info.subscribers === "number" ? info.subscribers : "—");
  }

  // --- rendering: runners ---

  function runnerButton(label, action, name) {
    var button = el("button", "small-button", label);
    button.type = "button";
    button.setAttribute("data-action", action);
    button.setAttribute("data-runner", name);
    return button;
  }

  function runnerRow(name) {
    var entry = runnerRows[name];
    if (entry) { return entry; }
    var row = el("tr");
    entry = {
      row: row,
      name: el("td", "runner-name"),
      state: el("td"),
      progress: el("td"),
      last: el("td"),
      next: el("td"),
    };
    var history = entry.name.appendChild(el("a", "", name));  // the cell's text stays the runner's name
    history.href = historyUrl.replace("RUNNER", encodeURIComponent(name));
    history.title = "Run history of " + name + ": its latest runs and their log lines";
    entry.stateTag = entry.state.appendChild(el("span", "tag"));
    entry.bar = entry.progress.appendChild(el("progress"));
    entry.bar.max = 100;
    entry.progressText = entry.progress.appendChild(el("span", "small muted progress-text"));
    entry.lastWhen = entry.last.appendChild(el("div"));
    entry.lastResult = entry.last.appendChild(el("div", "small"));
    entry.lastError = entry.last.appendChild(el("div", "small error runner-error"));
    entry.nextWhen = entry.next.appendChild(el("span"));
    entry.staleMark = entry.state.appendChild(el("div", "small stale-note"));
    entry.queuedMark = entry.state.appendChild(el("div", "small queued-note"));
    [entry.name, entry.state, entry.progress, entry.last, entry.next].forEach(function (cell) { row.appendChild(cell); });
    if (canControl) {
      var actions = el("td", "runner-actions");
      entry.run = actions.appendChild(runnerButton("Run", "run", name));
      entry.pause = actions.appendChild(runnerButton("Pause", "pause", name));
      entry.resume = actions.appendChild(runnerButton("Resume", "resume", name));
      row.appendChild(actions);
    }
    runnerRows[name] = entry;
    field("runners").appendChild(row);
    setText("runners-empty", "");
    field("runners-empty").hidden = true;
    return entry;
  }

  function renderRunner(state) {
    if (!state || typeof state.name !== "string") { return; }
    var entry = runnerRow(state.name);
    var value = state.state || "unknown";
    entry.stateTag.textContent = value;
    entry.stateTag.className = "tag " + ({ running: "live", paused: "pending", failed: "bad", idle: "" }[value] || "");
    var running = value === "running";
    entry.bar.hidden = !running;
    if (running && typeof state.progressPercent === "number") {
      entry.bar.value = Math.max(0, Math.min(100, state.progressPercent));
      entry.bar.textContent = Math.round(entry.bar.value) + "%";
    } else if (running) {
      entry.bar.removeAttribute("value");  // indeterminate
    }
    var percent = running && typeof state.progressPercent === "number" ? Math.round(state.progressPercent) + "% " : "";
    entry.progressText.textContent = running ? percent + (state.progressMessage || "") : "";
    if (state.lastStartedAt) {
      entry.lastWhen.textContent = formatTime(state.lastStartedAt) + (typeof state.lastDuration === "number" ? " · took " + formatDuration(state.lastDuration) : "");
      entry.lastWhen.title = relative(state.lastStartedAt);
    } else {
      entry.lastWhen.textContent = "never";
    }
    entry.lastResult.textContent = state.lastResult || state.lastMessage || "";
    entry.lastError.textContent = state.lastError || "";
    entry.row.classList.toggle("has-error", Boolean(state.lastError) || value === "failed");
    entry.nextWhen.textContent = value === "paused" ? "paused" : (state.nextRunAt ? formatTime(state.nextRunAt) : "—");
    entry.nextWhen.title = state.nextRunAt ? relative(state.nextRunAt) : "";
    if (running) { entry.queuedMark.textContent = ""; }  // the queued Run started (or one was running anyway)
    entry.value = value;
    renderRunnerActions(entry);
  }

  // Pause and Resume need the service now; Run stays usable while it is away (it is queued, see docs/service.md).
  function renderRunnerActions(entry) {
    var note = staleNote();
    entry.staleMark.textContent = note;
    entry.staleMark.hidden = !note;
    entry.row.classList.toggle("is-stale", Boolean(note));
    if (!entry.run) { return; }
    entry.pause.hidden = entry.value === "paused";
    entry.resume.hidden = entry.value !== "paused";
    entry.pause.disabled = entry.resume.disabled = stale;
    entry.run.disabled = !stale && entry.value === "running";
  }

  function showQueued(message) {
    var result = message.result || {};
    var entry = message.action === "run" && typeof result.trigger === "number" ? runnerRows[message.runner] : null;
    if (entry) {
      entry.queuedMark.textContent = (result.alreadyQueued ? "Run already queued" : "Run queued") +
        " (trigger " + result.trigger + ")" + (result.queued ? ": runs when the service is back" : "");
    }
  }

  function renderRunners() {
    var body = field("runners");
    body.textContent = "";
    runnerRows = {};
    var runners = (model.snapshot && model.snapshot.runners) || {};
    var names = Object.keys(runners);
    names.forEach(function (name) { renderRunner(runners[name]); });
    var empty = field("runners-empty");
    empty.hidden = names.length > 0;
    empty.textContent = names.length ? "" : (model.snapshot ? "The service reported no runners." : "No runner information yet.");
  }

  // --- rendering: log ---

  var logList = field("log");
  var levelSelect = field("log-level");
  var following = true;

  function minLevel() { return LEVELS[levelSelect.value] || 0; }
  function levelOf(name) { return LEVELS[String(name || "").toUpperCase()] || 20; }

  function logLine(event) {
    var level = String(event.level || "INFO").toUpperCase();
    var item = el("li", "log-line level-" + level.toLowerCase().replace(/[^a-z]/g, ""));
    item.setAttribute("data-level", String(levelOf(level)));
    item.appendChild(el("time", "log-time", formatClock(event.at)));
    item.appendChild(el("span", "log-level", level));
    item.appendChild(el("span", "log-logger", event.logger || ""));
    item.appendChild(el("span", "log-message", event.message == null ? "" : event.message));
    item.hidden = levelOf(level) < minLevel();
    return item;
  }

  function atBottom() {
    return logList.scrollTop + logList.clientHeight >= logList.scrollHeight - BOTTOM_SLACK_PX;
  }
  function scrollIfFollowing() {
    if (following) { logList.scrollTop = logList.scrollHeight; }
  }
  function setFollowing(value) {
    following = value;
    setText("log-follow", following ? "" : "autoscroll paused — scroll to the bottom to follow");
  }

  function appendLogs(events, note) {
    var fragment = document.createDocumentFragment();
    events.forEach(function (event) { fragment.appendChild(logLine(event)); });
    if (note) { fragment.appendChild(el("li", "log-line log-note", note)); }
    logList.appendChild(fragment);
    while (logList.childElementCount > LOG_MAX_LINES) { logList.removeChild(logList.firstElementChild); }
    scrollIfFollowing();
  }

  function renderLog() {
    logList.textContent = "";
    appendLogs((model.snapshot && model.snapshot.logs) || []);
  }

  logList.addEventListener("scroll", function () { setFollowing(atBottom()); });
  levelSelect.addEventListener("change", function () {
    var min = minLevel();
    Array.prototype.forEach.call(logList.children, function (item) {
      var level = Number(item.getAttribute("data-level") || 0);
      item.hidden = level !== 0 && level < min;
    });
    scrollIfFollowing();
  });

  // --- messages from the server ---

  function applySnapshot(message) {
    model.snapshot = message.snapshot || null;
    model.link = message.link || model.link;
    model.baseSeq = (model.snapshot && typeof model.snapshot.seq === "number") ? model.snapshot.seq : 0;
    renderRunners();
    renderLog();
    renderSummary();
  }

  function applyEvents(message) {
    var events = Array.isArray(message.events) ? message.events : [];
    var logs = [];
    var summaryChanged = false;
    events.forEach(function (event) {
      if (!event || typeof event.seq !== "number" || event.seq <= model.baseSeq) { return; }  // already in the snapshot
      if (!model.snapshot) { return; }
      if (event.type === "log") {
        logs.push(event);
      } else if (event.type === "runner" && typeof event.name === "string") {
        model.snapshot.runners[event.name] = event;
        renderRunner(event);
      } else if (event.type === "heartbeat") {
        var info = {};
        Object.keys(event).forEach(function (key) { if (key !== "type" && key !== "seq" && key !== "at") { info[key] = event[key]; } });
        model.snapshot.service = info;
        model.snapshot.heartbeat = event;
        summaryChanged = true;
      } else if (event.type === "service" && typeof event.state === "string") {
        model.snapshot.serviceState = event.state;
        summaryChanged = true;
      }
    });
    var dropped = typeof message.dropped === "number" && message.dropped > 0 ? message.dropped : 0;
    if (logs.length || dropped) {
      appendLogs(logs, dropped ? "… " + dropped + " events were dropped (too many at once)" : null);
    }
    if (summaryChanged) { renderSummary(); }
  }

  function showResult(message, isError) {
    var node = field("action-result");
    var label = message.action ? message.action + (message.runner ? " " + message.runner : "") + ": " : "";
    var text;
    if (isError) {
      text = label + (message.message || "failed");
    } else {
      var result = message.result || {};
      text = label + (result.message || (result.restarting ? "the service is restarting" :
        (result.reconnecting ? "reconnecting" : (result.state ? "now " + result.state : "done"))));
    }
    node.className = "small " + (isError ? "error" : "ok");
    node.textContent = text;
  }

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    if (!message || typeof message !== "object") { return; }
    if (message.type === "snapshot") {
      if (typeof message.canControl === "boolean") { canControl = canControl && message.canControl; }
      applySnapshot(message);
    } else if (message.type === "events") {
      applyEvents(message);
    } else if (message.type === "link") {
      model.link = message.link || model.link;
      renderSummary();
    } else if (message.type === "reply") {
      showResult(message, false);
      showQueued(message);
    } else if (message.type === "error") {
      showResult(message, true);
    }
  }

  // --- the socket ---

  var socket = null;
  var retryMs = RETRY_MIN_MS;
  var retryTimer = null;
  var pageProblem = "connecting…";

  function socketOpen() { return socket !== null && socket.readyState === WebSocket.OPEN; }

  function connect() {
    if (retryTimer !== null) { clearTimeout(retryTimer); retryTimer = null; }
    if (socket !== null) { return; }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + window.location.host + socketPath);
    socket = ws;
    ws.addEventListener("open", function () { retryMs = RETRY_MIN_MS; pageProblem = ""; renderSummary(); });
    ws.addEventListener("message", onMessage);
    ws.addEventListener("close", function (event) {
      if (socket === ws) { socket = null; }
      if (event.code === CLOSE_FORBIDDEN) {
        pageProblem = "signed out or no permission — reload the page";
        renderSummary();
        return;  // retrying cannot help
      }
      // Any other close reconnects: a web node restart, or the socket's lifetime being over (4408, after
      // PROGET_STATUS_SOCKET_LIFETIME_SECONDS); the new socket's snapshot replaces the whole page state.
      pageProblem = "page reconnecting…";
      renderSummary();
      var delay = Math.random() * retryMs;
      retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
      retryTimer = setTimeout(connect, delay);
    });
  }

  function send(message) {
    if (!socketOpen()) {
      showResult({ action: message.action, runner: message.runner, message: "not connected to the web server" }, true);
      return;
    }
    socket.send(JSON.stringify(message));
  }

  root.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button || !root.contains(button)) { return; }
    var action = button.getAttribute("data-action");
    if (action === "reconnect") {
      if (socketOpen()) {
        send({ action: "reconnect" });
      } else {
        retryMs = RETRY_MIN_MS;
        pageProblem = "";
        connect();
      }
    } else if (action === "restart") {
      if (window.confirm("Restart the service node? Running tasks get a short grace period, then stop.")) {
        send({ action: "restart" });
      }
    } else if (action === "run" || action === "pause" || action === "resume") {
      send({ action: action, runner: button.getAttribute("data-runner") });
    }
  });

  renderSummary();
  connect();
})();

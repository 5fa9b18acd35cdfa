/* The feed page: while a reindex of this feed waits or runs, poll its status.json once a second and show the
 * trigger state and Feed Indexing's progress; when it ends, stop polling and reload the feed's file list.
 * A "queued" banner from the Reindex click goes once the service has taken that trigger.
 * Every text from the server reaches the DOM through textContent, never parsed as markup.
 */
(function () {
  "use strict";

  var POLL_MS = 1000;          // one status.json a second while a reindex is pending or running
  var RETRY_MAX_MS = 10000;    // a failing poll backs off up to this, then keeps trying at this pace

  var root = document.getElementById("feed-page");
  if (!root) { return; }
  var statusUrl = root.getAttribute("data-status-url");
  var delay = POLL_MS;
  var timer = null;

  function field(name) { return root.querySelector('[data-field="' + name + '"]'); }
  function setText(name, text) {
    var node = field(name);
    if (node) { node.textContent = text === null || text === undefined ? "" : String(text); }
  }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  // "2026-01-02T03:04:05.678+00:00" -> "2026-01-02 03:04:05 UTC", as the server renders it.
  function formatTime(value) {
    var date = value ? new Date(value) : null;
    if (!date || isNaN(date.getTime())) { return "—"; }
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function renderTriggers(triggers) {
    var body = field("triggers");
    var table = field("triggers-table");
    if (!body || !table) { return; }
    var rows = document.createDocumentFragment();
    triggers.forEach(function (trigger) {
      var row = el("tr");
      row.setAttribute("data-trigger", String(trigger.id));
      var state = el("td");
      state.appendChild(el("span", "tag trigger-state " + trigger.state, trigger.state));
      row.appendChild(state);
      row.appendChild(el("td", "", trigger.requestedBy || "—"));
      var when = el("td");
      var time = el("time", "", formatTime(trigger.createdAt));
      if (trigger.createdAt) { time.setAttribute("datetime", trigger.createdAt); }
      when.appendChild(time);
      row.appendChild(when);
      row.appendChild(el("td", "trigger-result", trigger.result || "—"));
      rows.appendChild(row);
    });
    body.replaceChildren(rows);
    table.hidden = triggers.length === 0;
  }

  function describe(status) {
    var latest = status.triggers.length ? status.triggers[0] : null;
    if (!latest) { return "no reindex requested"; }
    if (latest.state === "pending") { return "reindex queued: waiting for the service"; }
    if (latest.state === "running") { return "reindexing…"; }
    return "reindex " + latest.state + (latest.result ? ": " + latest.result : "");
  }

  function renderProgress(status) {
    var box = field("progress");
    var bar = field("progress-bar");
    var progress = status.progress;
    if (!box || !bar) { return; }
    if (!progress) { box.hidden = true; return; }
    box.hidden = false;
    if (typeof progress.percent === "number") {
      bar.value = progress.percent;
      setText("progress-percent", Math.round(progress.percent) + " %");
    } else {
      bar.removeAttribute("value");  // indeterminate
      setText("progress-percent", "");
    }
    setText("progress-message", progress.message);
  }

  function renderService(status) {
    var service = status.service;
    if (service && !service.reachable) {
      setText("service-note", "(live progress unavailable — service not reachable: " + service.reason + ")");
    } else {
      setText("service-note", "");
    }
  }

  // The file list (this page of it, this search), errors and facts as the server renders them now; the page's own
  // HTML, parsed inertly.
  function reloadContents() {
    fetch(window.location.pathname + window.location.search, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("feed-contents");
        var current = document.getElementById("feed-contents");
        if (fresh && current) { current.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () {
        setText("service-note", "(reload the page to see the new file list)");
      });
  }

  // A "queued — the service is not reachable" banner is false once the service has taken its trigger.
  function dropQueuedBanners(triggers) {
    triggers.forEach(function (trigger) {
      if (trigger.state === "pending") { return; }
      document.querySelectorAll(".messages .queued.trigger-" + Number(trigger.id)).forEach(function (banner) {
        var list = banner.parentNode;
        banner.remove();
        if (!list.children.length) { list.remove(); }
      });
    });
  }

  function schedule(ms) {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, ms);
  }

  function poll() {
    fetch(statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 404) { return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (status) {
        if (status === null) {  // deleted while we watched: nothing left to follow
          setText("reindex-state", "this feed no longer exists");
          if (field("progress")) { field("progress").hidden = true; }
          return;
        }
        delay = POLL_MS;
        renderTriggers(status.triggers || []);
        dropQueuedBanners(status.triggers || []);
        renderProgress(status);
        renderService(status);
        setText("reindex-state", describe(status));
        root.setAttribute("data-active", status.active ? "true" : "false");
        if (status.active) {
          schedule(POLL_MS);
        } else {
          reloadContents();
        }
      })
      .catch(function (error) {
        delay = Math.min(delay * 2, RETRY_MAX_MS);
        setText("service-note", "(status unavailable: " + error.message + "; retrying)");
        schedule(delay);
      });
  }

  if (root.getAttribute("data-active") === "true") { poll(); }
}());

/* Spaceyard pages: small progressive enhancements, no dependencies.
 * - the stage badge follows the runtime endpoint; the app iframe appears once the Space serves;
 * - build and container logs stream from the SSE endpoints (timestamps, auto-scroll);
 * - settings forms are sent to the JSON API with the session's CSRF token;
 * - embed dialog and copy buttons. */
(function () {
  "use strict";

  var csrf = document.body.getAttribute("data-csrf") || "";
  var SERVING = ["RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"];
  var ERRORS = ["CONFIG_ERROR", "NO_APP_FILE", "BUILD_ERROR", "RUNTIME_ERROR"];
  var BUSY_MESSAGES = {
    BUILDING: "Building the Space…",
    RUNNING_BUILDING: "Building a new version…",
    APP_STARTING: "Starting the app…",
    RUNNING_APP_STARTING: "Starting the new version…",
    PAUSED: "This Space is paused by its owner.",
    SLEEPING: "This Space is asleep; a visit wakes it.",
    CONFIG_ERROR: "Configuration error",
    NO_APP_FILE: "No application file",
    BUILD_ERROR: "Build error",
    RUNTIME_ERROR: "Runtime error",
  };

  function stageClass(stage) {
    if (stage === "RUNNING") return "ok";
    if (ERRORS.indexOf(stage) >= 0) return "error";
    if (stage === "SLEEPING" || stage === "PAUSED" || stage === "STOPPED") return "idle";
    return "busy";
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function clock(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  // ------------------------------------------------------------------------------------ logs
  function LogView(el, spaceId, kind) {
    this.el = el;
    this.url = "/api/spaces/" + spaceId + "/logs/" + kind;
    this.source = null;
    this.kind = kind;
  }

  LogView.prototype.atBottom = function () {
    var el = this.el;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  };

  LogView.prototype.append = function (entry) {
    var auto = document.getElementById("autoscroll");
    var follow = auto ? auto.checked : this.atBottom();
    var line = document.createElement("div");
    line.className = "line";
    var t = document.createElement("time");
    t.dateTime = entry.timestamp || "";
    t.title = entry.timestamp || "";
    t.textContent = clock(entry.timestamp);
    var text = document.createElement("span");
    text.textContent = entry.data;
    line.appendChild(t);
    line.appendChild(text);
    this.el.appendChild(line);
    var empty = this.el.querySelector(".log-empty");
    if (empty) empty.remove();
    if (follow) this.el.scrollTop = this.el.scrollHeight;
  };

  LogView.prototype.connect = function () {
    var self = this;
    this.close();
    this.el.textContent = "";
    var hint = document.createElement("div");
    hint.className = "log-empty";
    hint.textContent = "Waiting for log lines…";
    this.el.appendChild(hint);
    var source = new EventSource(this.url);
    this.source = source;
    source.onmessage = function (ev) {
      try { self.append(JSON.parse(ev.data)); } catch (e) { /* ignore a malformed line */ }
    };
    source.onerror = function () {
      // the server ends a finished build's stream; reconnect explicitly when something changes
      if (self.source === source) { source.close(); self.source = null; }
    };
  };

  LogView.prototype.close = function () {
    if (this.source) { this.source.close(); this.source = null; }
  };

  // ------------------------------------------------------------------------------------ Space page
  var header = document.querySelector(".space-header[data-space]");
  var spaceId = header ? header.getAttribute("data-space") : null;
  var logs = {};
  if (spaceId) {
    document.querySelectorAll("[data-log]").forEach(function (el) {
      logs[el.getAttribute("data-log")] = new LogView(el, spaceId, el.getAttribute("data-log"));
    });
  }

  function showFrame() {
    var area = document.getElementById("app-area");
    if (!area || document.getElementById("app")) return;
    var frame = document.createElement("iframe");
    frame.id = "app";
    frame.className = "app-frame";
    frame.src = area.getAttribute("data-frame-src");
    frame.title = area.getAttribute("data-frame-title") || "App";
    frame.setAttribute("allow", "clipboard-write; microphone; camera; fullscreen");
    area.insertBefore(frame, area.firstChild);
    var panel = document.getElementById("build-panel");
    if (panel) panel.hidden = true;
  }

  var COLORS = { red: "#b91c1c", orange: "#c2410c", yellow: "#a16207", green: "#15803d", blue: "#1d4ed8",
    indigo: "#4338ca", purple: "#7e22ce", pink: "#be185d", gray: "#374151" };

  // a build read the README's card: show its title, emoji and colours without a reload
  function refreshCard() {
    fetch("/api/spaces/" + spaceId, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (info) {
        if (!info || !info.cardData) return;
        var card = info.cardData;
        var title = header.querySelector(".title");
        if (title && card.title) title.textContent = card.title;
        var emoji = header.querySelector(".space-emoji");
        if (emoji && card.emoji) emoji.textContent = card.emoji;
        if (card.colorFrom || card.colorTo) {
          header.style.setProperty("--space-gradient", "linear-gradient(135deg, " +
            (COLORS[card.colorFrom] || COLORS.indigo) + ", " + (COLORS[card.colorTo] || COLORS.purple) + ")");
        }
      })
      .catch(function () { /* keep what the page shows */ });
  }

  function updateBuildPanel(rt) {
    var panel = document.getElementById("build-panel");
    if (!panel) return;
    var status = document.getElementById("build-status");
    var started = document.getElementById("getting-started");
    if (rt.sha && started) started.hidden = true;
    if (status && rt.sha) status.hidden = false;
    var msg = document.getElementById("build-message");
    if (msg) msg.textContent = BUSY_MESSAGES[rt.stage] || rt.stage;
    var reason = document.getElementById("reason");
    if (reason) {
      reason.textContent = rt.errorMessage || "";
      reason.hidden = !rt.errorMessage;
    }
    panelLogs(rt.stage);
  }

  // the failure panel shows the log that explains the failure: the app's output for RUNTIME_ERROR
  function panelLogs(stage) {
    var buildSection = document.getElementById("build-log-section");
    var runSection = document.getElementById("run-log-section");
    if (!buildSection || !runSection) return;
    var appFailed = stage === "RUNTIME_ERROR";
    buildSection.hidden = appFailed;
    runSection.hidden = !appFailed;
    if (appFailed && logs.run && !logs.run.source && !logs.run.loaded) {
      logs.run.loaded = true;
      logs.run.connect();
    }
    if (!appFailed && logs.run) logs.run.loaded = false;
  }

  var state = header ? { stage: header.getAttribute("data-stage"), sha: header.getAttribute("data-sha") } : null;

  function onRuntime(rt) {
    var changed = rt.stage !== state.stage;
    var newSha = (rt.sha || "") !== (state.sha || "");
    var badge = document.getElementById("stage");
    if (badge) {
      badge.textContent = rt.stage;
      badge.className = "stage stage-" + stageClass(rt.stage);
    }
    document.querySelectorAll("[data-stage-text]").forEach(function (el) { el.textContent = rt.stage; });
    header.setAttribute("data-stage", rt.stage);
    var hasFrame = !!document.getElementById("app");
    var inPanel = !!document.getElementById("build-panel");
    // a new commit: follow its build log (it ends by itself when the build is done)
    if (logs.build && inPanel && rt.sha && newSha) logs.build.connect();
    if (SERVING.indexOf(rt.stage) >= 0) {
      if (rt.stage === "RUNNING" && (changed || !hasFrame)) refreshCard();
      showFrame();
    } else if (!hasFrame && document.getElementById("build-panel")) {
      updateBuildPanel(rt);
      var building = rt.stage === "BUILDING" || rt.stage === "RUNNING_BUILDING";
      if (logs.build && rt.sha && !newSha && ((changed && building) || (!logs.build.source && building))) {
        logs.build.connect();
      }
    }
    // a new build or a restart: replay the logs from their new beginning
    if (changed || newSha) {
      if (logs.build && !document.getElementById("build-panel") && (newSha || rt.stage === "BUILDING" || rt.stage === "RUNNING_BUILDING")) {
        logs.build.connect();
      }
      if (logs.run && !inPanel && !logs.run.el.hidden && rt.stage === "RUNNING") logs.run.connect();
    }
    state.stage = rt.stage;
    state.sha = rt.sha || "";
  }

  function poll() {
    fetch("/api/spaces/" + spaceId + "/runtime", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (rt) { if (rt) onRuntime(rt); })
      .catch(function () { /* offline for a moment: try again */ })
      .then(function () {
        var busy = state.stage !== "RUNNING" && ERRORS.indexOf(state.stage) < 0 && state.stage !== "PAUSED";
        setTimeout(poll, document.hidden ? 5000 : busy ? 500 : 1500);
      });
  }

  if (spaceId) {
    var panel = document.getElementById("build-panel");
    if (logs.build && panel && !panel.hidden && state.sha && state.stage !== "RUNTIME_ERROR") logs.build.connect();
    if (panel && !panel.hidden) panelLogs(state.stage);
    if (logs.build && !panel) logs.build.connect();
    poll();
  }

  // explore: each card's stage badge follows its Space too
  var liveCards = document.querySelectorAll("[data-live-stage]");
  function pollCards() {
    var pending = [];
    liveCards.forEach(function (el) {
      pending.push(fetch("/api/spaces/" + el.getAttribute("data-live-stage") + "/runtime",
        { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (rt) {
          if (!rt || !rt.stage) return;
          el.textContent = rt.stage;
          el.className = "stage stage-" + stageClass(rt.stage);
        })
        .catch(function () { /* keep the last stage */ }));
    });
    Promise.all(pending).then(function () { setTimeout(pollCards, document.hidden ? 15000 : 3000); });
  }
  if (liveCards.length) setTimeout(pollCards, 3000);

  // logs page: Build / Container switch
  document.querySelectorAll("[data-show-log]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var kind = btn.getAttribute("data-show-log");
      document.querySelectorAll("[data-show-log]").forEach(function (b) {
        b.setAttribute("aria-pressed", b === btn ? "true" : "false");
      });
      Object.keys(logs).forEach(function (k) {
        logs[k].el.hidden = k !== kind;
        if (k === kind && !logs[k].source) logs[k].connect();
      });
    });
  });

  // ------------------------------------------------------------------------------------ dialogs, copy
  document.querySelectorAll("[data-open]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var dlg = document.getElementById(btn.getAttribute("data-open"));
      if (dlg && dlg.showModal) dlg.showModal();
    });
  });
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var field = document.getElementById(btn.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, done);
      else { try { document.execCommand("copy"); } catch (e) { /* selected: copy by hand */ } done(); }
    });
  });

  // ------------------------------------------------------------------------------------ edit / upload
  // one commit through the Hub commit API (NDJSON, base64 contents), as huggingface_hub sends it
  function bytesToBase64(bytes) {
    var out = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(out);
  }

  function sendCommit(form, files) {
    var status = form.querySelector("#commit-status");
    var button = form.querySelector("button[type=submit]");
    var header = { summary: form.querySelector("#commit-summary").value };
    var parent = form.getAttribute("data-parent");
    if (parent) header.parentCommit = parent;
    var lines = [JSON.stringify({ key: "header", value: header })];
    files.forEach(function (f) {
      lines.push(JSON.stringify({ key: "file", value: { path: f.path, content: bytesToBase64(f.bytes), encoding: "base64" } }));
    });
    if (button) button.disabled = true;
    return fetch(form.getAttribute("data-api"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-ndjson", Accept: "application/json", "X-CSRF-Token": csrf },
      body: lines.join("\n") + "\n",
    }).then(function (r) {
      if (r.ok) { window.location.href = form.getAttribute("data-done"); return; }
      return r.text().then(function (text) {
        var message = r.headers.get("X-Error-Message") || text;
        try { message = JSON.parse(text).error || message; } catch (e) { /* plain text */ }
        throw new Error(message || "HTTP " + r.status);
      });
    }).catch(function (err) {
      if (status) { status.textContent = err.message || String(err); status.className = "toast toast-bad"; status.hidden = false; }
      if (button) button.disabled = false;
    });
  }

  var editForm = document.getElementById("edit-form");
  if (editForm) {
    editForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = document.getElementById("edit-text").value;
      sendCommit(editForm, [{ path: editForm.getAttribute("data-path"), bytes: new TextEncoder().encode(text) }]);
    });
  }
  var uploadForm = document.getElementById("upload-form");
  if (uploadForm) {
    uploadForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var folder = document.getElementById("upload-folder").value.replace(/^\/+|\/+$/g, "");
      var picked = Array.prototype.slice.call(document.getElementById("upload-files").files);
      Promise.all(picked.map(function (file) {
        return file.arrayBuffer().then(function (buf) {
          return { path: (folder ? folder + "/" : "") + file.name, bytes: new Uint8Array(buf) };
        });
      })).then(function (files) { return sendCommit(uploadForm, files); });
    });
  }

  // ------------------------------------------------------------------------------------ settings forms
  var toast = document.getElementById("settings-status");

  function say(text, bad) {
    if (!toast) { if (bad) alert(text); return; }
    toast.textContent = text;
    toast.className = "toast" + (bad ? " toast-bad" : "");
    toast.hidden = false;
  }

  function formJson(form) {
    var body = {};
    var extra = form.getAttribute("data-extra");
    if (extra) { try { body = JSON.parse(extra); } catch (e) { body = {}; } }
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.hasAttribute("data-skip") || el.disabled) return;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) return;
      var value = el.value;
      var type = el.getAttribute("data-type");
      if (type === "int") value = parseInt(value, 10);
      else if (type === "bool") value = value === "true";
      body[el.name] = value;
    });
    return body;
  }

  // plain forms that ask first (deleting a secret or a variable)
  document.querySelectorAll("form[data-confirm]:not(.api-form)").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  document.querySelectorAll("form.api-form").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var match = form.querySelector("[data-confirm-match]");
      if (match && match.value !== match.getAttribute("data-confirm-match")) {
        say("Type the Space's name to confirm.", true);
        match.focus();
        return;
      }
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) return;
      var button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      var body = formJson(form);
      var method = form.getAttribute("data-method") || "POST";
      fetch(form.getAttribute("data-action"), {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      })
        .then(function (r) {
          if (r.ok) return r;
          return r.text().then(function (text) {
            var message = r.headers.get("X-Error-Message") || text;
            try { message = JSON.parse(text).error || message; } catch (e) { /* plain text */ }
            if (r.status === 404 || r.status === 405) message = message || "This action is not available on this server yet.";
            throw new Error(message || "HTTP " + r.status);
          });
        })
        .then(function (r) {
          // lifecycle actions answer the runtime: show the new stage now, not at the next poll
          if (spaceId && state && (r.headers.get("Content-Type") || "").indexOf("json") >= 0) {
            r.json().then(function (data) { if (data && data.stage) onRuntime(data); }, function () {});
          }
          say(form.getAttribute("data-done") || "Done");
          var goto = form.getAttribute("data-goto");
          var gotoUrl = form.getAttribute("data-goto-url");
          if (goto && body[goto]) window.location.href = "/spaces/" + body[goto];
          else if (gotoUrl) window.location.href = gotoUrl;
          else if (form.hasAttribute("data-reload")) setTimeout(function () { window.location.reload(); }, 400);
        })
        .catch(function (err) { say(err.message || String(err), true); })
        .then(function () { if (button) button.disabled = false; });
    });
  });

  // persistent storage: how much of /data is used (Settings tab)
  document.querySelectorAll("[data-storage-used]").forEach(function (el) {
    fetch(el.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d || d.usedBytes === null || d.usedBytes === undefined) { el.textContent = "use unknown"; return; }
        var n = d.usedBytes, units = ["B", "KB", "MB", "GB", "TB"], i = 0;
        while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
        el.textContent = "used: " + (i ? n.toFixed(1) : n) + " " + units[i];
      }, function () {});
  });
})();

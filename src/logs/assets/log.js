// Follows a running deployment: appends lines as the server sends them and
// updates the state when it ends. The page is complete without this script.
"use strict";
(function () {
  var body = document.body;
  if (body.dataset.live !== "true" || !window.EventSource) return;
  var log = document.getElementById("log");
  var events = new EventSource(body.dataset.events);

    // As ferry writes durations: 148ms, 14s, 2m 5s.
  function took(ms) {
    if (!(ms >= 0)) return "";
    if (ms < 1000) return Math.round(ms) + "ms";
    var s = Math.round(ms / 1000), parts = [];
    [[3600, "h"], [60, "m"], [1, "s"]].forEach(function (u) {
      if (s >= u[0]) { parts.push(Math.floor(s / u[0]) + u[1]); s %= u[0]; }
    });
    return parts.join(" ");
  }

  function group(host, step, title) {
    var groups = log.querySelectorAll("details.group");
    for (var i = 0; i < groups.length; i++) {
      if (groups[i].dataset.host === host && groups[i].dataset.step === step) return groups[i];
    }
    var empty = log.querySelector("p.empty");
    if (empty) empty.remove();
    var details = document.createElement("details");
    details.className = "group";
    details.open = true;
    details.dataset.host = host;
    details.dataset.step = step;
    var summary = document.createElement("summary");
        [["title", title], ["took", ""], ["exit", step ? "running" : ""]].forEach(function (part) {
      var span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      summary.appendChild(span);
    });
    details.appendChild(summary);
    log.appendChild(details);
    return details;
  }

  events.addEventListener("line", function (e) {
    var line = JSON.parse(e.data);
    var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    var g = group(line.host || "", line.step || "", line.title);
    // line.html is rendered and escaped by ferry, like the rest of the page.
        g.insertAdjacentHTML("beforeend", line.html);
    var first = g.querySelector("time");
    if (first) g.querySelector(".took").textContent = took(line.t - Date.parse(first.getAttribute("datetime")));
    if (line.exit !== null && line.exit !== undefined) {
      g.querySelector(".exit").textContent = "exit " + line.exit;
      if (line.exit !== 0) {
        g.classList.add("failed");
        g.open = true;
      }
    }
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  });

  events.addEventListener("end", function (e) {
    var end = JSON.parse(e.data);
    var badge = document.getElementById("state");
    badge.textContent = end.state;
    badge.className = "badge " + end["class"];
    document.getElementById("description").textContent = end.description;
    document.getElementById("duration").textContent = end.duration;
    document.title = document.title.replace(/^\S+/, end.state);
        var labels = log.querySelectorAll(".exit");
    for (var i = 0; i < labels.length; i++) {
      if (labels[i].textContent === "running") labels[i].textContent = "";
    }
    body.dataset.live = "false";
    events.close();
  });
})();

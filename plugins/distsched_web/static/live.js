// Live refresh without a framework: every few seconds, fetch this same URL (its query string
// holds the filters) and replace the regions marked data-live by their new content. Scroll,
// filters and focus stay as they are; nothing refreshes while the tab is hidden, while the
// "live" box is unticked, or while the user types in a form field.
(function () {
  "use strict";
  var PERIOD_MS = 3000;
  var box = document.getElementById("live");
  if (box) {
    box.checked = sessionStorage.getItem("distsched-live") !== "off";
    box.addEventListener("change", function () {
      sessionStorage.setItem("distsched-live", box.checked ? "on" : "off");
    });
  }
  function busy() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (document.hidden || (box && !box.checked) || busy()) return;
    if (!document.querySelector("[data-live]")) return;
    fetch(window.location.href, { headers: { "X-Distsched-Live": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var fresh = doc.getElementById(old.id);
          if (fresh && fresh.innerHTML !== old.innerHTML) old.innerHTML = fresh.innerHTML;
        });
        document.documentElement.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the server is away for a moment: try again next period */ });
  }
  setInterval(refresh, PERIOD_MS);
})();

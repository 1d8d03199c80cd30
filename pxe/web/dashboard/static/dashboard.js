// The dashboard's only script: live parts, filter selects, confirmations. No build step.
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  var loginUrl = document.currentScript.dataset.login;

  // Every element with data-live="URL" is replaced by a fresh fragment from URL every 2 s.
  function refresh(el) {
    return fetch(el.dataset.live, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = loginUrl + "?next=" + encodeURIComponent(location.pathname + location.search);
          return;
        }
        if (!response.ok) { throw new Error(response.status); }
        return response.text().then(function (html) {
          el.innerHTML = html;
          el.classList.remove("stale");
          showPower();
        });
      })
      .catch(function () { el.classList.add("stale"); });
  }

  // Power cells (data-power-host="ID" under an element with data-power="URL"): the page is
  // drawn without them; their readings come from the URL afterwards, and again every tick.
  var power = {};

  function showPower() {
    document.querySelectorAll("[data-power-host]").forEach(function (cell) {
      var reading = power[cell.dataset.powerHost];
      var text = "…";
      var kind = "pending";
      if (reading && reading.bmc === false) { text = "—"; kind = "none"; }
      else if (reading && reading.error) { text = "unknown"; kind = "error"; cell.title = reading.error; }
      else if (reading && reading.power) { text = reading.power; kind = reading.power; cell.title = ""; }
      cell.textContent = text;
      cell.className = cell.className.replace(/\bpower-\S+/g, "").trim() + " power-" + kind;
    });
  }

  function fetchPower() {
    var source = document.querySelector("[data-power]");
    var cells = document.querySelectorAll("[data-power-host]");
    if (!source || !cells.length) { return; }
    var ids = Array.prototype.map.call(cells, function (cell) { return cell.dataset.powerHost; });
    fetch(source.dataset.power + "?ids=" + ids.join(","), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : {}; })
      .then(function (readings) { Object.assign(power, readings); showPower(); })
      .catch(function () { /* the next tick asks again */ });
  }

  function tick() {
    if (document.hidden) { return; }
    document.querySelectorAll("[data-live]").forEach(refresh);
    fetchPower();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setInterval(tick, PERIOD_MS);
    fetchPower();
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });
  });
})();

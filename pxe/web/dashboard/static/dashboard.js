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
        });
      })
      .catch(function () { el.classList.add("stale"); });
  }

  function tick() {
    if (document.hidden) { return; }
    document.querySelectorAll("[data-live]").forEach(refresh);
  }

  document.addEventListener("DOMContentLoaded", function () {
    setInterval(tick, PERIOD_MS);
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

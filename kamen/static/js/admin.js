// Back-office behaviour. It lives here, not in the templates, because the
// Content-Security-Policy forbids inline script: templates only carry data-*
// attributes, and any text they hold (a category name in a confirm question)
// is read as text, never run as code.
(function () {
  "use strict";

  function showHtmxError() {
    document.getElementById("htmx-error").hidden = false;
  }
  document.addEventListener("htmx:responseError", showHtmxError);
  document.addEventListener("htmx:sendError", showHtmxError);

  // <form data-confirm="question">: ask before a plain (non-htmx) submit;
  // htmx forms use hx-confirm instead.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  document.addEventListener("change", function (event) {
    var input = event.target;
    // <input type="checkbox" data-check-all="selector">: tick or clear every box it selects.
    var selector = input.getAttribute("data-check-all");
    if (selector) {
      document.querySelectorAll(selector).forEach(function (box) { box.checked = input.checked; });
    }
    // <select data-autosubmit>: a filter that applies as soon as it is chosen.
    if (input.hasAttribute("data-autosubmit") && input.form) {
      input.form.submit();
    }
  });

  // <button data-nav-toggle="id">: on a phone the back-office menu opens and closes.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-nav-toggle]");
    if (!button) { return; }
    var nav = document.getElementById(button.getAttribute("data-nav-toggle"));
    var open = nav.classList.toggle("open");
    button.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // <form data-reset-on-success>: an htmx upload form empties itself once accepted.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (event.detail.successful && form.hasAttribute("data-reset-on-success")) {
      form.reset();
    }
  });

  // <button class="copy" data-copy="text">: copy a prepared message (售后 to a supplier).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy") || "").then(function () {
      button.textContent = "已复制";
    });
  });
})();

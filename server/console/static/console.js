// userve console: the little JavaScript the pages use. No inline script
// is allowed (Content-Security-Policy), so behaviour hangs on attributes.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Forms with data-confirm ask before they are sent (merge, delete);
  // the server checks its own confirmation too.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        ev.preventDefault();
      }
    });
  });
  // A form sent once is not sent again by a second click (a download
  // leaves the page in place, so it may be sent again).
  document.querySelectorAll("form[method=post]:not([data-download])").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (ev.defaultPrevented) {
        return;
      }
      if (form.dataset.sent) {
        ev.preventDefault();
        return;
      }
      form.dataset.sent = "1";
    });
  });
});

// csrfToken is the session's CSRF token for scripts that post with fetch:
// send it as the X-CSRF-Token header.
function csrfToken() {
  var input = document.querySelector("input[name=csrf]");
  return input ? input.value : "";
}

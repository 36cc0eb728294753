// The product's only script besides htmx: no inline JavaScript anywhere, so the
// Content-Security-Policy can forbid it. Behaviour is declared with data attributes.
(function () {
  "use strict";
  // <form data-confirm="Question?">: ask before submitting (the text is escaped HTML).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);
  // <button data-copy="element-id">: copy that element's text to the clipboard.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) { return; }
    field.select();
    var said = function (ok) { button.textContent = ok ? "Copied" : "Selected: press Ctrl+C to copy"; };
    var legacy = function () { said(document.execCommand("copy")); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { said(true); }, legacy);
    } else {
      legacy();
    }
  });
})();

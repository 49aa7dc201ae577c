/* Progressive enhancement of the citizen pages; every page works without it (CSP: scripts from 'self').
   - A form back with errors: the focus moves to the first field in error, else to the error summary
     (without JavaScript the summary, right under the heading, links to each field);
   - a link of the error summary focuses its field, not only scrolls to it;
   - "Afficher le mot de passe" checkboxes, hidden until this script runs.
   Written for old browsers too (no arrow functions, no NodeList.forEach). */
(function () {
  "use strict";
  var each = function (selector, fn) { Array.prototype.forEach.call(document.querySelectorAll(selector), fn); };

  var summary = document.querySelector("[data-ncc-errors]");
  if (summary) {
    var first = document.querySelector("[aria-invalid=true]");
    if (!first) { summary.setAttribute("tabindex", "-1"); }
    (first || summary).focus();
    each("[data-ncc-errors] a[href^='#']", function (link) {
      link.addEventListener("click", function (event) {
        var field = document.getElementById(link.getAttribute("href").slice(1));
        if (field) { event.preventDefault(); field.focus(); }
      });
    });
  }

  each("[data-ncc-show-password]", function (box) {
    var input = document.getElementById(box.getAttribute("data-ncc-show-password"));
    var toggle = box.querySelector("input[type=checkbox]");
    if (!input || !toggle) { return; }
    box.hidden = false;
    toggle.addEventListener("change", function () { input.type = toggle.checked ? "text" : "password"; });
  });
})();

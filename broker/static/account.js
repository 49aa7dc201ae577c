/* Progressive enhancements of the account forms; every form works without them.
   - "Afficher le mot de passe" buttons (hidden until this script runs);
   - the strength meter beside a new password, fed by the same check the server applies.
   Every word comes from the page or the server, in the page's language. */
(function () {
  "use strict";
  document.querySelectorAll("[data-show-password]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("aria-controls"));
    if (!input) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      button.setAttribute("aria-pressed", show ? "true" : "false");
      button.textContent = button.getAttribute(show ? "data-hide-label" : "data-show-label");
    });
  });

  document.querySelectorAll("[data-strength]").forEach(function (box) {
    var input = document.getElementById(box.getAttribute("data-strength"));
    if (!input || !input.form || !window.fetch) { return; }
    var form = input.form;
    var token = form.querySelector("input[name=csrf_token]");
    var meter = box.querySelector("meter");
    var text = box.querySelector("[data-strength-text]");
    var timer = null;
    var latest = 0;
    box.hidden = false;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var mine = ++latest;
        if (!input.value) { meter.value = 0; text.textContent = ""; return; }
        var body = { password: input.value };
        ["email", "given_name", "family_name"].forEach(function (name) {
          if (form.elements[name]) { body[name] = form.elements[name].value; }
        });
        window.fetch(box.getAttribute("data-url"), {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": token ? token.value : "" },
          body: JSON.stringify(body)
        }).then(function (response) { return response.json(); }).then(function (verdict) {
          if (mine !== latest) { return; }
          meter.value = verdict.score;
          text.textContent = verdict.ok ? verdict.label + "." : verdict.message;
        }).catch(function () { text.textContent = ""; });
      }, 300);
    });
  });
})();

// The modal: htmx appends a <dialog class="modal"> to <body>; we open it, close it on
// the server's "closeModal" event or a close link, and remove it once closed.
(function () {
  "use strict";
  function closeAll() {
    document.querySelectorAll("dialog.modal").forEach(function (d) { d.close(); });
  }
  document.addEventListener("htmx:load", function (event) {
    var el = event.detail.elt;
    if (el instanceof HTMLDialogElement && el.classList.contains("modal") && !el.open) {
      document.querySelectorAll("dialog.modal").forEach(function (d) { if (d !== el) d.remove(); });
      el.addEventListener("close", function () { el.remove(); });
      el.showModal();
      focusFirst(el);
    }
  });
  // --- Exchange pages: focus, messages (issue 13) ---
  // A dialog opens, or a step inside it replaces its content: focus the field to fill (one
  // with an error first, then [autofocus], then the first input), else the first button, else
  // the first control, so focus never falls to <body>.
  function focusFirst(dialog) {
    var pick = dialog.querySelector(".has-error input, .has-error select") ||
      dialog.querySelector("[autofocus]") ||
      dialog.querySelector("input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled])") ||
      dialog.querySelector("#modal-body button:not([disabled])") ||
      dialog.querySelector("#modal-body a[href]:not([data-close-modal])") ||
      dialog.querySelector("#modal-body [data-close-modal]");
    if (pick) pick.focus();
  }
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "modal-body") {
      var dialog = target.closest("dialog.modal");
      // The swap removed the focused control (focus fell to <body>): give it to the new step.
      if (dialog && dialog.open && !dialog.contains(document.activeElement)) focusFirst(dialog);
    }
  });
  // A row or the list swapped in place (Refresh, a poll, dismissing a notice, the list reloading)
  // takes the focused control with it: put focus back on that row's first action (or its
  // "Refreshing" status) instead of <body>.
  var rowWithFocus = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target, active = document.activeElement;
    var row = active && active.closest && active.closest("li.connection");
    rowWithFocus = row && target && target.contains(row) ? row.id : null;
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (!rowWithFocus || (document.activeElement && document.activeElement !== document.body)) return;
    var row = document.getElementById(rowWithFocus);
    var pick = row && row.querySelector(".row-actions button, .row-actions [tabindex='-1'], .row-actions a[href]");
    rowWithFocus = null;
    if (pick) pick.focus();
  });
  // The server's "showMessage" event (HX-Trigger): said at once in the page's status region
  // (templates/_base.html, there from the start so screen readers announce it), never on the
  // next page.
  function liveRegion() {
    return document.getElementById("live-messages");
  }
  document.addEventListener("showMessage", function (event) {
    var text = event.detail && event.detail.text;
    if (!text) return;
    var region = liveRegion();
    if (!region) return;
    var item = document.createElement("li");
    item.className = "message success";
    item.setAttribute("data-testid", "live-message");
    item.textContent = text;
    region.replaceChildren(item);
  });
  document.addEventListener("closeModal", closeAll);
  // Keep Tab inside the open dialog: from the last control back to the first, and back.
  var FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])";
  document.addEventListener("keydown", function (event) {
    var dialog = document.querySelector("dialog.modal[open]");
    if (!dialog || event.key !== "Tab") return;
    var items = Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      return el.offsetParent !== null;
    });
    if (!items.length) return;
    var first = items[0], last = items[items.length - 1];
    if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
      event.preventDefault();
      first.focus();
    }
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-close-modal]");
    if (link && link.closest("dialog.modal")) {
      event.preventDefault();
      closeAll();
    }
  });
})();

// --- Menus (top bar): <details data-menu> works without JS; with it, Escape closes the open
// menu and returns focus to its button, a click or focus outside closes it, and opening one
// closes the others.
(function () {
  "use strict";
  function openMenus() {
    return Array.prototype.slice.call(document.querySelectorAll("details[data-menu][open]"));
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    openMenus().forEach(function (menu) {
      var hadFocus = menu.contains(document.activeElement);
      menu.open = false;
      if (hadFocus) menu.querySelector("summary").focus();
    });
  });
  function closeOutside(event) {
    openMenus().forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  }
  document.addEventListener("click", closeOutside);
  document.addEventListener("focusin", closeOutside);
  document.addEventListener("toggle", function (event) {
    var opened = event.target;
    if (!(opened instanceof HTMLDetailsElement) || !opened.hasAttribute("data-menu") || !opened.open) return;
    openMenus().forEach(function (menu) { if (menu !== opened) menu.open = false; });
  }, true);
})();

// Copy buttons ([data-copy] names the element whose text is copied). The button is hidden in
// the HTML, so without JS only the selectable text shows. Without the Clipboard API (an insecure
// origin, a refused permission) the text is selected for the user to copy with the keyboard.
(function () {
  "use strict";
  function reveal(root) {
    root.querySelectorAll("button[data-copy][hidden]").forEach(function (b) { b.hidden = false; });
  }
  function say(button, text, manual) {
    var status = button.parentNode.querySelector(".copy-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("copy-manual", !!manual);
  }
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  document.addEventListener("DOMContentLoaded", function () { reveal(document); });
  document.addEventListener("htmx:load", function (event) { reveal(event.detail.elt); });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent.trim();
    function fallback() {
      selectText(source);
      say(button, "Selected: press Ctrl+C (⌘C on a Mac) to copy.", true);
    }
    if (!navigator.clipboard || !window.isSecureContext) { fallback(); return; }
    navigator.clipboard.writeText(text).then(function () {
      say(button, "Copied.", false);
    }, fallback);
  });
})();

// Alerts settings: show the webhook fields of the chosen mode (JSON: the address and signing
// secret; Telegram: bot token and chat id). Without JS every field shows, and the form's own
// checks say which are needed.
(function () {
  "use strict";
  function sync(select) {
    var form = select.form;
    form.querySelectorAll("[data-webhook-mode]").forEach(function (part) {
      part.hidden = part.getAttribute("data-webhook-mode") !== select.value;
    });
  }
  function setUp() {
    var select = document.getElementById("id_webhook_mode");
    if (select && select.form.querySelector("[data-webhook-mode]")) sync(select);
  }
  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("change", function (event) {
    if (event.target.id === "id_webhook_mode") sync(event.target);
  });
})();

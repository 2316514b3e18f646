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
    }
  });
  document.addEventListener("closeModal", closeAll);
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-close-modal]");
    if (link && link.closest("dialog.modal")) {
      event.preventDefault();
      closeAll();
    }
  });
})();

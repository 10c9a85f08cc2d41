// Canned replies page: a delete asks first (no inline handlers: the pages' CSP allows
// only scripts from this site).
document.querySelectorAll("button[data-confirm]").forEach((button) => {
  button.addEventListener("click", (event) => {
    if (!window.confirm(button.dataset.confirm)) event.preventDefault();
  });
});

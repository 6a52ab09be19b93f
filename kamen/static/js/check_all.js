// A header checkbox with class "check-all" ticks every checkbox named by its data-target.
document.addEventListener("change", function (event) {
  var box = event.target;
  if (!box.classList || !box.classList.contains("check-all")) return;
  var form = box.closest("form") || document;
  form.querySelectorAll('input[type=checkbox][name="' + box.dataset.target + '"]').forEach(function (b) {
    b.checked = box.checked;
  });
});

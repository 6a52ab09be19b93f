// Copy buttons on the order page: <button class="copy" data-copy="text">.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var text = button.getAttribute("data-copy") || "";
  var done = function () {
    var old = button.textContent;
    button.textContent = "已复制";
    setTimeout(function () { button.textContent = old; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    document.body.removeChild(area);
    done();
  }
});

// Radios that show or hide a note: <input data-shows="#id"> / <input data-hides="#id">
// (the 充错账号 guidance on the 售后 form).
document.addEventListener("change", function (event) {
  var input = event.target;
  var show = input.getAttribute("data-shows");
  var hide = input.getAttribute("data-hides");
  if (show) document.querySelectorAll(show).forEach(function (el) { el.hidden = !input.checked; });
  if (hide && input.checked) document.querySelectorAll(hide).forEach(function (el) { el.hidden = true; });
});

// Supplier form: the connection fields' labels and hints follow the chosen kind
// (acg-faka 用户ID / 对接密钥, Fulu AppKey / AppSecret, kamen AppID / 密钥).
document.addEventListener("change", function (event) {
  var select = event.target;
  if (!select.dataset || !select.dataset.kindTexts) return;
  var texts = JSON.parse(select.dataset.kindTexts);
  Object.keys(texts).forEach(function (name) {
    var pair = texts[name][select.value];
    var input = document.getElementById(name);
    if (!pair || !input) return;
    var label = document.querySelector('label[for="' + name + '"]');
    var hint = input.closest(".field") && input.closest(".field").querySelector(".hint");
    if (label) label.textContent = pair[0];
    if (hint) hint.textContent = pair[1];
  });
});

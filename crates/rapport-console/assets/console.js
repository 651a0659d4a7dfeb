// Rapport's console: the only script, and only for what a page cannot do alone — build
// progress as it happens. Every page reads the same without it.
(function () {
  "use strict";
  var bars = document.querySelectorAll("progress[data-progress]");
  if (!bars.length || !window.EventSource) { return; }
  var source = new EventSource("/analyst/progress");
  source.addEventListener("progress", function (message) {
    var builds;
    try { builds = JSON.parse(message.data); } catch (e) { return; }
    builds.forEach(function (build) {
      var selector = '[data-progress="' + CSS.escape(build.id) + '"]';
      var bar = document.querySelector("progress" + selector);
      var text = document.querySelector('[data-progress-text="' + CSS.escape(build.id) + '"]');
      if (bar) { bar.max = Math.max(build.log_position, 1); bar.value = build.position; }
      if (text) { text.textContent = build.position + " of " + build.log_position; }
    });
  });
})();

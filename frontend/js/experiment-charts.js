// Charts of the experiment metrics page (Chart.js 4, vendored). Data comes from the page's
// json_script block, so no model output ever passes through innerHTML here.
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    var source = document.getElementById("chart-data");
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var palette = ["#2f5bea", "#1f7a4d", "#b42318", "#b26b00", "#6941c6", "#0e7490", "#9f1239", "#4d7c0f"];
    Chart.defaults.animation = false; // charts appear at once and screenshots are stable

    // Spread: a floating bar from p25 to p75 per configuration, the median as a point.
    var spreadSelect = document.getElementById("spread-metric");
    var spread = new Chart(document.getElementById("spread-chart"), {
      data: { labels: data.labels, datasets: [] },
      options: {
        responsive: true,
        plugins: { legend: { display: true } },
        scales: { y: { beginAtZero: false } },
      },
    });
    function drawSpread() {
      var key = spreadSelect.value;
      var series = data.series[key];
      spread.data.datasets = [
        {
          type: "bar",
          label: "25th–75th percentile",
          data: series.map(function (s) { return s.median === null ? null : [s.p25, s.p75]; }),
          backgroundColor: "rgba(47, 91, 234, 0.25)",
          borderColor: "#2f5bea",
          borderWidth: 1,
        },
        {
          type: "scatter",
          label: "median",
          data: series.map(function (s, i) { return s.median === null ? null : { x: data.labels[i], y: s.median }; }),
          backgroundColor: "#111827",
          pointRadius: 5,
        },
      ];
      spread.options.scales.y.title = { display: true, text: data.names[key] };
      spread.update();
    }
    spreadSelect.addEventListener("change", drawSpread);
    drawSpread();

    // Quality vs speed: one point per configuration.
    var scatterSelect = document.getElementById("scatter-metric");
    var scatter = new Chart(document.getElementById("scatter-chart"), {
      type: "scatter",
      data: { datasets: [] },
      options: {
        responsive: true,
        plugins: {
          tooltip: {
            callbacks: {
              label: function (ctx) {
                return ctx.dataset.label + ": " + ctx.parsed.x.toFixed(1) + " tok/s, " + ctx.parsed.y.toFixed(3);
              },
            },
          },
        },
        scales: {
          x: { title: { display: true, text: "median tokens/s" } },
          y: { title: { display: true, text: "" } },
        },
      },
    });
    function drawScatter() {
      var key = scatterSelect.value;
      scatter.data.datasets = data.labels.map(function (label, i) {
        var speed = data.series.tokens_per_s[i].median;
        var quality = data.series[key] ? data.series[key][i].median : null;
        return {
          label: label,
          data: speed === null || quality === null ? [] : [{ x: speed, y: quality }],
          backgroundColor: palette[i % palette.length],
          pointRadius: 6,
        };
      });
      scatter.options.scales.y.title.text = scatterSelect.options[scatterSelect.selectedIndex].text;
      scatter.update();
    }
    scatterSelect.addEventListener("change", drawScatter);
    drawScatter();
  });
})();

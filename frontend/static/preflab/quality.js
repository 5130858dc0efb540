// Quality dashboard charts, drawn with uPlot (vendored under static/vendor/uplot)
// from the stored report that the page embeds as JSON. Each chart takes its box's width.
(function () {
  "use strict";

  var plots = [];  // [uPlot, host]: resized with the window (a phone turned, a window narrowed)

  function keep(plot, host) { plots.push([plot, host]); }

  function read(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function width(host) {
    return Math.max(260, Math.min(host.parentNode.clientWidth - 24, 620));
  }

  function weeks(host, rows) {
    if (!rows || !rows.length) { host.textContent = "No labels yet."; return; }
    var x = rows.map(function (_, i) { return i; });
    var raw = rows.map(function (r) { return r.raw_agreement; });
    var alpha = rows.map(function (r) { return r.krippendorff_alpha_nominal; });
    keep(new uPlot({
      width: width(host), height: 220,
      legend: { live: false },
      scales: { x: { time: false, range: [-0.5, rows.length - 0.5] }, y: { range: [Math.min(0, Math.min.apply(null, alpha.filter(function (v) { return v !== null; }).concat([0]))), 1] } },
      axes: [{ values: function (u, ticks) { return ticks.map(function (t) { return rows[t] ? rows[t].week : ""; }); } }, {}],
      series: [{}, { label: "raw agreement", stroke: "#2b6cb0", width: 2, points: { show: true } },
               { label: "Krippendorff's α", stroke: "#c05621", width: 2, points: { show: true } }],
    }, [x, raw, alpha], host), host);
  }

  function mix(host, data) {
    if (!data || !data.judgments) { host.textContent = "No labels yet."; return; }
    var names = data.strengths.map(function (s) { return s.strength > 0 ? "+" + s.strength : String(s.strength); })
      .concat(["bad", "skip"]);
    var counts = data.strengths.map(function (s) { return s.labels; })
      .concat([data.choices.both_bad || 0, data.skips || 0]);
    var bars = uPlot.paths.bars({ size: [0.7, 60] });
    keep(new uPlot({
      width: width(host), height: 220,
      legend: { live: false },
      scales: { x: { time: false, range: [-0.6, names.length - 0.4] } },
      axes: [{ values: function (u, ticks) { return ticks.map(function (t) { return names[t] || ""; }); }, space: 24 }, {}],
      series: [{}, { label: "labels", fill: "rgba(43,108,176,.55)", stroke: "#2b6cb0", paths: bars, points: { show: false } }],
    }, [names.map(function (_, i) { return i; }), counts], host), host);
  }

  function histogram(host, data) {
    if (!data || !data.counts || !data.counts.length) { host.textContent = "Nothing audited."; return; }
    var mids = data.counts.map(function (_, i) { return (data.edges[i] + data.edges[i + 1]) / 2; });
    var step = data.edges[1] - data.edges[0];
    keep(new uPlot({
      width: width(host), height: 200,
      legend: { live: false },
      scales: { x: { time: false, range: [data.edges[0] - step, data.edges[data.edges.length - 1] + step] } },
      series: [{}, { label: "comparisons", fill: "rgba(192,86,33,.5)", stroke: "#c05621",
                     paths: uPlot.paths.bars({ size: [0.95, 40] }), points: { show: false } }],
    }, [mids, data.counts], host), host);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof uPlot === "undefined") { return; }
    var w = document.getElementById("chart-weeks");
    if (w) { weeks(w, read("weeks-data")); }
    var m = document.getElementById("chart-mix");
    if (m) { mix(m, read("mix-data")); }
    var a = document.getElementById("chart-audit");
    if (a) { histogram(a, read("audit-data")); }
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        // Shrink first, so each host's box can narrow before its new width is read.
        plots.forEach(function (ph) { ph[0].setSize({ width: 200, height: ph[0].height }); });
        plots.forEach(function (ph) { ph[0].setSize({ width: width(ph[1]), height: ph[0].height }); });
      }, 150);
    });
  });
})();

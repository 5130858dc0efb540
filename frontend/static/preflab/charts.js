// Draws the chart specs a page embeds (models_svc/plots.py describes them) with
// uPlot, vendored under static/vendor/uplot. A page lists its charts in a
// <div class="charts" data-specs="ID"> whose figures hold one .chart-host each, in
// the order of the JSON array in <script id="ID">. Text reaches the page as text
// (textContent), never as markup. Charts follow the window's width.
(function () {
  "use strict";

  var COLOURS = ["#2456a6", "#b3261e", "#1e7b34", "#8a6d00", "#6a3fa0"];
  var plots = [];  // [uPlot, host]

  function width(host) {
    // The host is a block: its width is its box's content width, whatever it holds.
    return Math.max(200, Math.min(host.clientWidth, 620));
  }

  function fmt(v) {
    return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);
  }

  function line(spec, host) {
    var xs = [];
    spec.series.forEach(function (s) { s.points.forEach(function (p) { if (xs.indexOf(p[0]) < 0) { xs.push(p[0]); } }); });
    xs.sort(function (a, b) { return a - b; });
    var data = [xs];
    spec.series.forEach(function (s) {
      var at = {};
      s.points.forEach(function (p) { at[p[0]] = p[1]; });
      data.push(xs.map(function (x) { return x in at ? at[x] : null; }));
    });
    var lo = xs[0], hi = xs[xs.length - 1];
    var pad = hi > lo ? 0 : 0.5;
    var y = { auto: true };
    if (spec.y_range) { y = { range: function (u, min, max) { return [Math.min(spec.y_range[0], min), Math.max(spec.y_range[1], max)]; } }; }
    var axes = [{ label: spec.x_label }, {}];
    if (spec.x_ticks) {
      axes[0].values = function (u, ticks) { return ticks.map(function (t) { return spec.x_ticks[t] || ""; }); };
      axes[0].splits = function () { return xs; };
    }
    return new uPlot({
      width: width(host), height: 200, legend: { live: false },
      scales: { x: { time: false, range: [lo - pad, hi + pad] }, y: y },
      axes: axes,
      series: [{}].concat(spec.series.map(function (s, i) {
        return { label: s.name, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true, points: { show: true, size: 6 } };
      })),
    }, data, host);
  }

  function bars(labels, values, host, colour) {
    var x = labels.map(function (_, i) { return i; });
    return new uPlot({
      width: width(host), height: 200, legend: { live: false },
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] } },
      axes: [{ values: function (u, ticks) { return ticks.map(function (t) { return labels[t] === undefined ? "" : labels[t]; }); },
               splits: function () { return x; } }, {}],
      series: [{}, { label: "count", fill: colour.fill, stroke: colour.stroke, paths: uPlot.paths.bars({ size: [0.8, 60] }),
                     points: { show: false } }],
    }, [x, values], host);
  }

  function histogram(spec, host) {
    var labels = spec.counts.map(function (_, i) { return fmt((spec.edges[i] + spec.edges[i + 1]) / 2); });
    return bars(labels, spec.counts, host, { fill: "rgba(192,86,33,.5)", stroke: "#c05621" });
  }

  function intervals(spec, host) {
    // One row per source: a line from low to high, a dot at the score; plain HTML.
    var lo = Math.min.apply(null, spec.rows.map(function (r) { return r.low; }));
    var hi = Math.max.apply(null, spec.rows.map(function (r) { return r.high; }));
    var span = hi - lo || 1;
    var list = document.createElement("ol");
    list.className = "intervals";
    spec.rows.forEach(function (r) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "interval-name";
      name.textContent = r.label;
      var track = document.createElement("span");
      track.className = "interval-track";
      var bar = document.createElement("span");
      bar.className = "interval-bar";
      bar.style.left = (100 * (r.low - lo) / span) + "%";
      bar.style.width = Math.max(0.5, 100 * (r.high - r.low) / span) + "%";
      var dot = document.createElement("span");
      dot.className = "interval-dot";
      dot.style.left = (100 * (r.score - lo) / span) + "%";
      track.title = r.label + ": " + fmt(r.score) + " [" + fmt(r.low) + ", " + fmt(r.high) + "]";
      track.appendChild(bar);
      track.appendChild(dot);
      li.appendChild(name);
      li.appendChild(track);
      list.appendChild(li);
    });
    host.appendChild(list);
    return null;
  }

  var DRAW = {
    line: line, histogram: histogram, intervals: intervals,
    bars: function (spec, host) { return bars(spec.labels, spec.values, host, { fill: "rgba(36,86,166,.55)", stroke: "#2456a6" }); },
  };

  function drawAll() {
    if (typeof uPlot === "undefined") { return; }
    document.querySelectorAll(".charts[data-specs]").forEach(function (box) {
      var node = document.getElementById(box.dataset.specs);
      if (!node) { return; }
      var specs = JSON.parse(node.textContent);
      box.querySelectorAll(".chart-host").forEach(function (host, i) {
        var spec = specs[i];
        if (!spec || spec.empty || host.dataset.drawn) { return; }
        host.dataset.drawn = "1";
        var plot = DRAW[spec.kind](spec, host);
        if (plot) { plots.push([plot, host]); }
      });
    });
  }

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      // Shrink first, so each box can narrow before its new width is read.
      plots.forEach(function (ph) { ph[0].setSize({ width: 200, height: ph[0].height }); });
      plots.forEach(function (ph) { ph[0].setSize({ width: width(ph[1]), height: ph[0].height }); });
    }, 150);
  });
  document.addEventListener("DOMContentLoaded", drawAll);
})();

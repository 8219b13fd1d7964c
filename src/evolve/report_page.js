// The report page's script: draws everything from the JSON in #run-data (report_html.cpp). Text from the
// run (code, prompts, answers, reasons) only ever goes into the page as textContent, never as markup.
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) {
    errors.push(String(e.message));
    var box = document.getElementById("page-errors");
    if (box) { box.hidden = false; box.textContent = "Errors while drawing this page: " + errors.join("; "); }
  });

  var D = JSON.parse(document.getElementById("run-data").textContent);
  var byId = {};
  D.programs.forEach(function (p) { byId[p.id] = p; });
  var callByIteration = {};
  D.llm_calls.forEach(function (c) { callByIteration[c.iteration] = c; });
  var SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "onclick") e.addEventListener("click", attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function fmt(x, digits) { return typeof x === "number" ? x.toFixed(digits === undefined ? 4 : digits) : String(x); }
  function table(head, rows) {
    return el("table", {}, [el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows.map(function (r) {
        return el("tr", {}, r.map(function (c) { return c instanceof Node ? el("td", {}, [c]) : el("td", { text: c === null || c === undefined ? "-" : String(c) }); }));
      }))]);
  }
  function section(id, title, children) {
    return el("section", { id: id }, [el("h2", { text: title })].concat(children));
  }
  function programLink(id) {
    return el("a", { href: "#program-" + id, "class": "plink", text: "#" + id, onclick: function (e) { e.preventDefault(); select(id); } });
  }
  var scores = D.programs.filter(function (p) { return p.correct; }).map(function (p) { return p.score; });
  var lo = scores.length ? Math.min.apply(null, scores) : 0, hi = scores.length ? Math.max.apply(null, scores) : 1;
  function color(p) {
    if (!p.correct) return "#c0392b";
    var t = hi > lo ? (p.score - lo) / (hi - lo) : 1;
    return "hsl(" + Math.round(200 - 80 * t) + ", 60%, " + Math.round(70 - 35 * t) + "%)";
  }

  // ---- summary
  function summary() {
    var initial = byId[1], best = byId[D.best_id];
    var items = [
      ["folder", D.dir], ["status", D.status], ["target", D.target],
      ["iterations", D.completed + (D.max_iterations ? " of " + D.max_iterations : "")],
      ["programs", String(D.programs.length)], ["time", fmt(D.elapsed_seconds / 60, 1) + " min"],
      ["initial", initial ? "#1 " + fmt(initial.score) : "-"],
      ["best", best ? "#" + best.id + " " + fmt(best.score) + (initial && initial.score > 0 ? " (" + fmt(best.score / initial.score, 2) + "x)" : "") : "-"],
      ["report made", D.generated_at]
    ];
    return el("header", {}, [el("h1", { text: "gqa-evolve run" }),
      el("div", { id: "page-errors", "class": "errors", hidden: "hidden" }),
      el("dl", { "class": "summary" }, [].concat.apply([], items.map(function (kv) { return [el("dt", { text: kv[0] }), el("dd", { text: kv[1] })]; })))]);
  }

  // ---- best score over time, overall and per island
  function scoreChart() {
    var box = el("div", { id: "score-chart" });
    var its = D.attempts.map(function (a) { return a.iteration; });
    its = its.filter(function (x, i) { return its.indexOf(x) === i; }).sort(function (a, b) { return a - b; });
    var nIsl = Math.max(1, D.islands.length);
    var progs = D.programs.slice().sort(function (a, b) { return a.iteration - b.iteration; });
    var best = null, islandBest = [], series = [its, []], j = 0;
    for (var k = 0; k < nIsl; ++k) { islandBest.push(null); series.push([]); }
    its.forEach(function (it) {
      for (; j < progs.length && progs[j].iteration <= it; ++j) {
        var p = progs[j];
        if (!p.correct) continue;
        if (best === null || p.score > best) best = p.score;
        for (var k = 0; k < nIsl; ++k)
          if ((p.iteration === 0 || p.island === k) && (islandBest[k] === null || p.score > islandBest[k])) islandBest[k] = p.score;
      }
      series[1].push(best);
      for (var k = 0; k < nIsl; ++k) series[2 + k].push(islandBest[k]);
    });
    var palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    var opts = {
      width: 900, height: 300,
      scales: { x: { time: false } },
      axes: [{ label: "iteration" }, { label: "combined_score" }],
      series: [{ label: "iteration" }, { label: "best", stroke: "#000", width: 2.5 }]
    };
    for (var k = 0; k < nIsl; ++k) opts.series.push({ label: "island " + k, stroke: palette[k % palette.length], width: 1.2 });
    requestAnimationFrame(function () {
      opts.width = Math.max(400, Math.min(box.clientWidth || 900, 1100));
      if (its.length === 0) { box.textContent = "Nothing committed yet."; return; }
      if (typeof uPlot === "undefined") { box.textContent = "The chart library did not load."; return; }
      new uPlot(opts, series, box);
    });
    return section("progress", "Best score over time", [box]);
  }

  // ---- lineage tree (SVG): one column per generation, one row per leaf in depth-first order
  function lineage() {
    var kids = {}, roots = [];
    D.programs.forEach(function (p) {
      if (p.parent && byId[p.parent]) (kids[p.parent] = kids[p.parent] || []).push(p.id);
      else roots.push(p.id);
    });
    var pos = {}, row = 0, maxGen = 0;
    function place(id, depth) {
      var ch = kids[id] || [];
      maxGen = Math.max(maxGen, depth);
      if (!ch.length) { pos[id] = { x: depth, y: row++ }; return pos[id].y; }
      var ys = ch.map(function (c) { return place(c, depth + 1); });
      pos[id] = { x: depth, y: (ys[0] + ys[ys.length - 1]) / 2 };
      return pos[id].y;
    }
    roots.forEach(function (r) { place(r, 0); });
    var CW = 110, RH = 26, PAD = 24;
    var s = svg("svg", { width: (maxGen + 1) * CW + 2 * PAD, height: Math.max(1, row) * RH + 2 * PAD, "class": "tree" });
    function at(id) { return { x: PAD + pos[id].x * CW, y: PAD + pos[id].y * RH }; }
    D.programs.forEach(function (p) {
      if (!p.parent || !pos[p.parent]) return;
      var a = at(p.parent), b = at(p.id), mx = (a.x + b.x) / 2;
      s.appendChild(svg("path", { d: "M" + a.x + "," + a.y + " C" + mx + "," + a.y + " " + mx + "," + b.y + " " + b.x + "," + b.y, "class": "edge" }));
    });
    D.programs.forEach(function (p) {
      var c = at(p.id);
      var g = svg("g", { "class": "node" + (p.id === D.best_id ? " best" : ""), "data-program": p.id, transform: "translate(" + c.x + "," + c.y + ")" });
      g.appendChild(svg("circle", { r: 8, fill: color(p) }));
      var t = svg("text", { x: 12, y: 4 });
      t.textContent = "#" + p.id + " " + (p.correct ? fmt(p.score, 3) : "failed");
      g.appendChild(t);
      var title = svg("title", {});
      title.textContent = "#" + p.id + " (island " + p.island + ", iteration " + p.iteration + "): " + p.mutation;
      g.appendChild(title);
      g.addEventListener("click", function () { select(p.id); });
      s.appendChild(g);
    });
    return section("lineage", "Lineage (click a program)", [el("p", { "class": "hint", text: "Columns are generations; colour is the score (red: failed); the ringed node is the best program." }),
      el("div", { "class": "tree-box" }, [s]), el("div", { id: "details" })]);
  }

  // ---- line diff (longest common subsequence) of a program against its parent
  function diffLines(a, b) {
    var x = a.split("\n"), y = b.split("\n"), n = x.length, m = y.length;
    if (n * m > 4e6) return null;
    var L = [];
    for (var i = 0; i <= n; ++i) L.push(new Int32Array(m + 1));
    for (var i = n - 1; i >= 0; --i)
      for (var j = m - 1; j >= 0; --j) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    var out = [], i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) { out.push([" ", x[i]]); ++i; ++j; }
      else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) out.push(["+", y[j++]]);
      else out.push(["-", x[i++]]);
    }
    return out;
  }
  function diffView(parent, p) {
    var d = diffLines(parent.code, p.code);
    if (!d) return el("p", { text: "Too large to compare here." });
    var pre = el("pre", { id: "program-diff", "class": "diff" }), shown = 0;
    d.forEach(function (l, k) {
      var near = false;
      for (var t = Math.max(0, k - 3); t <= Math.min(d.length - 1, k + 3); ++t) if (d[t][0] !== " ") near = true;
      if (!near) return;
      ++shown;
      pre.appendChild(el("span", { "class": l[0] === "+" ? "add" : l[0] === "-" ? "del" : "ctx", text: l[0] + " " + l[1] + "\n" }));
    });
    if (!shown) pre.textContent = "(no change)";
    return pre;
  }

  function block(title, text, id, open) {
    var d = el("details", open ? { open: "open" } : {}, [el("summary", { text: title }), el("pre", id ? { id: id } : {}, [text])]);
    return d;
  }

  function select(id) {
    var p = byId[id], box = document.getElementById("details");
    if (!p || !box) return;
    Array.prototype.forEach.call(document.querySelectorAll(".node.selected"), function (n) { n.classList.remove("selected"); });
    var node = document.querySelector('.node[data-program="' + id + '"]');
    if (node) node.classList.add("selected");
    box.textContent = "";
    box.appendChild(el("h3", { text: "Program #" + p.id + (p.id === D.best_id ? " (best)" : "") }));
    box.appendChild(el("p", {}, ["island " + p.island + ", generation " + p.generation + ", iteration " + p.iteration +
      ", combined_score " + fmt(p.score) + (p.correct ? "" : " (failed)") + ", parent ", p.parent ? programLink(p.parent) : "none",
      ", made by: " + p.mutation + (p.knobs ? "; knobs: " + p.knobs : "")]));
    box.appendChild(el("details", { open: "open" }, [el("summary", { text: "metrics" }),
      table(["metric", "value"], Object.keys(p.metrics).map(function (k) { return [k, typeof p.metrics[k] === "number" ? String(p.metrics[k]) : JSON.stringify(p.metrics[k])]; }))]));
    box.appendChild(block("code", p.code, "program-code", true));
    if (p.parent && byId[p.parent])
      box.appendChild(el("details", { open: "open" }, [el("summary", { text: "diff against parent #" + p.parent }), diffView(byId[p.parent], p)]));
    Object.keys(p.artifacts).forEach(function (k) { box.appendChild(block("artifact: " + k, p.artifacts[k])); });
    var c = callByIteration[p.iteration];
    if (c && p.iteration > 0) {
      box.appendChild(el("p", { "class": "hint", text: "LLM " + c.model + ": " + c.prompt_tokens + " prompt + " + c.completion_tokens +
        " completion tokens, " + fmt(c.latency_seconds, 1) + " s, " + c.retries + " retries" + (c.cost !== null ? ", cost " + fmt(c.cost) : "") +
        (c.whitespace_matched ? ", " + c.whitespace_matched + " SEARCH part(s) matched with whitespace ignored" : "") }));
      box.appendChild(block("prompt: system message", c.system, "program-system"));
      box.appendChild(block("prompt: user message", c.user, "program-prompt"));
      if (c.reasoning) box.appendChild(block("answer: reasoning", c.reasoning));
      box.appendChild(block("answer", c.answer, "program-answer", true));
    }
  }

  // ---- MAP-Elites grid per island
  function grids() {
    var dims = D.feature_dimensions, bins = D.feature_bins, out = [];
    D.islands.forEach(function (cells, k) {
      var title = el("h3", { text: "island " + k + " (" + Object.keys(cells).length + " elites)" });
      if (dims.length === 2 && bins > 0) {
        var rows = [];
        for (var y = bins - 1; y >= 0; --y) {
          var tds = [el("th", { text: String(y) })];
          for (var x = 0; x < bins; ++x) {
            var id = cells[x + "," + y], p = id ? byId[id] : null;
            tds.push(p ? el("td", { "class": "cell", style: "background:" + color(p) }, [programLink(id), el("br"), fmt(p.score, 3)]) : el("td", { "class": "cell empty" }));
          }
          rows.push(el("tr", {}, tds));
        }
        var head = [el("th", { text: dims[1] + " \u2191 / " + dims[0] + " \u2192" })];
        for (var x = 0; x < bins; ++x) head.push(el("th", { text: String(x) }));
        out.push(el("div", { "class": "grid" }, [title, el("table", { "class": "elites" }, [el("thead", {}, [el("tr", {}, head)]), el("tbody", {}, rows)])]));
      } else {
        out.push(el("div", { "class": "grid" }, [title, table(["cell (" + dims.join(", ") + ")", "program", "score"],
          Object.keys(cells).sort().map(function (c) { var p = byId[cells[c]]; return [c, programLink(cells[c]), p ? fmt(p.score) : "-"]; }))]));
      }
    });
    return section("grids", "MAP-Elites grids", [el("p", { "class": "hint", text: "Features: " + dims.join(", ") + "; " + bins + " bins each; a cell keeps its best program." }),
      el("div", { "class": "grids" }, out)]);
  }

  // ---- failures by stage
  function failures() {
    var keys = Object.keys(D.failures), max = 1;
    keys.forEach(function (k) { max = Math.max(max, D.failures[k]); });
    if (!keys.length) return section("failures", "Failures by stage", [el("p", { text: "No failures." })]);
    return section("failures", "Failures by stage", [table(["stage or outcome", "count", ""], keys.map(function (k) {
      return [k, D.failures[k], el("div", { "class": "bar", style: "width:" + Math.round(300 * D.failures[k] / max) + "px" })];
    }))]);
  }

  // ---- LLM usage, cost and the model choice
  function llm() {
    if (!D.llm_calls.length && !(D.ensemble.models || []).length)
      return section("llm", "LLM usage", [el("p", { text: "No LLM calls (offline mutator)." })]);
    var parts = [table(["model", "calls", "failed", "improvements", "per call", "prompt tokens", "completion tokens", "reasoning tokens", "mean latency s", "retries", "cost"],
      D.model_totals.map(function (t) {
        return [t.name, t.calls, t.failed, t.improvements, fmt(t.improvements_per_call, 2), t.prompt_tokens, t.completion_tokens,
          t.reasoning_tokens, fmt(t.mean_latency_seconds, 1), t.retries, t.cost === null ? "not priced" : fmt(t.cost)];
      }))];
    if ((D.ensemble.models || []).length) {
      parts.push(el("h3", { text: "Model choice" + (D.ensemble.bandit ? " (bandit: weight \u00d7 (improvements + 1) / (uses + 2))" : " (by weight)") }));
      parts.push(table(["model", "weight", "uses", "improvements", "dropped", "chance of the next draw"], D.ensemble.models.map(function (m) {
        return [m.name, m.weight, m.uses, m.improvements, m.dropped ? "yes" : "no", fmt(100 * m.probability, 1) + "%"];
      })));
    }
    parts.push(el("h3", { text: "Calls" }));
    parts.push(el("div", { "class": "scroll" }, [table(["iteration", "model", "status", "prompt", "completion", "latency s", "retries", "cost", "improved", "error"],
      D.llm_calls.map(function (c) {
        var att = D.attempts.filter(function (a) { return a.iteration === c.iteration; })[0];
        return [att && att.program ? programLink(att.program) : String(c.iteration), c.model, c.status, c.prompt_tokens, c.completion_tokens,
          fmt(c.latency_seconds, 1), c.retries, c.cost === null ? "-" : fmt(c.cost), c.improved ? "yes" : "", c.error];
      }))]));
    return section("llm", "LLM usage and cost", parts);
  }

  function attempts() {
    return section("attempts", "Attempts", [el("div", { "class": "scroll" }, [table(["iteration", "island", "parent", "mutator", "outcome", "stage", "program", "seconds", "reason"],
      D.attempts.map(function (a) {
        return [a.iteration, a.island, a.parent ? programLink(a.parent) : "-", a.mutator, a.outcome, a.stage,
          a.program ? programLink(a.program) : "-", fmt(a.seconds, 1), a.reason.length > 300 ? a.reason.slice(0, 300) + "..." : a.reason];
      }))])]);
  }

  var app = document.getElementById("app");
  app.textContent = "";
  [summary, scoreChart, lineage, grids, failures, llm, attempts].forEach(function (part) { app.appendChild(part()); });
  var wanted = /^#program-(\d+)$/.exec(location.hash);
  select(wanted && byId[+wanted[1]] ? +wanted[1] : D.best_id || (D.programs[0] && D.programs[0].id));
  document.body.setAttribute("data-ready", "1");
})();

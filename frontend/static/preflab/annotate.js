// Task pages: keyboard-only answering, time on task, span tagging and ranking.
// One document-level key handler reads whatever task htmx last swapped into
// #task, so nothing needs re-binding per task except the per-task state below.
(function () {
  "use strict";
  let startedAt = performance.now();

  const form = () => document.getElementById("task-form");
  const help = () => document.getElementById("help");
  const typing = (el) => el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text"));

  function initTask() {
    startedAt = performance.now();
    const f = form();
    if (!f) { const done = document.getElementById("no-task"); if (done) done.focus && done.querySelector("a")?.focus(); return; }
    f.addEventListener("submit", stampTime);
    f.addEventListener("htmx:configRequest", (e) => { e.detail.parameters["time_on_task_ms"] = String(Math.round(performance.now() - startedAt)); });
    initSpans(f);
    initRanking(f);
    const first = f.querySelector(".errorlist") ? f.querySelector("fieldset .error")?.closest("fieldset")?.querySelector("input") : null;
    (first || f.querySelector("input[type=radio]:checked") || f.querySelector("input[type=radio], .rank-item"))?.focus();
  }

  function stampTime() {
    const f = form();
    if (f) f.elements["time_on_task_ms"].value = String(Math.round(performance.now() - startedAt));
  }

  function rowsOf(f, cls) { return Array.from(f.querySelectorAll("fieldset." + cls)); }
  function answered(row) { return !!row.querySelector("input[type=radio]:checked"); }
  function currentRow(f, cls) {
    const focused = document.activeElement && document.activeElement.closest("fieldset." + cls);
    return focused || rowsOf(f, cls).find((r) => !answered(r)) || null;
  }
  function choose(row, key) {
    const input = row && row.querySelector(`input[type=radio][data-key="${CSS.escape(key)}"]`);
    if (!input) return false;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    const rows = Array.from(row.parentElement.querySelectorAll("fieldset." + row.classList[1]));
    const next = rows.slice(rows.indexOf(row) + 1).find((r) => !answered(r));
    (next ? next.querySelector("input[type=radio]") : input).focus();
    return true;
  }

  let beforeHelp = null; // what had the focus when the help opened
  function toggleHelp(show) {
    const h = help();
    if (!h) return;
    h.hidden = show === undefined ? !h.hidden : !show;
    if (!h.hidden) { beforeHelp = document.activeElement; h.focus(); return; }
    // Back to where the annotator was; "input" alone would pick the hidden CSRF field,
    // which cannot take focus, and leave the focus on <body>.
    const back = beforeHelp && beforeHelp.isConnected && beforeHelp !== document.body ? beforeHelp
      : form()?.querySelector("input[type=radio], .rank-item");
    beforeHelp = null;
    back?.focus();
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey && e.key === "Enter" && form()) { e.preventDefault(); form().requestSubmit(); return; }
    if (e.key === "Escape") { if (help() && !help().hidden) { toggleHelp(false); e.preventDefault(); } else if (typing(document.activeElement)) document.activeElement.blur(); return; }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const el = document.activeElement;
    if (typing(el)) return; // Enter in the skip box submits the skip form natively
    if (e.key === "?") { e.preventDefault(); toggleHelp(); return; }
    const f = form();
    if (!f || (help() && !help().hidden)) return;
    const kind = f.dataset.kind;
    if (e.key === "Enter") {
      if (el && (el.tagName === "BUTTON" || el.tagName === "A" || el.tagName === "SUMMARY")) return; // let it act
      e.preventDefault(); f.requestSubmit(); return;
    }
    if (e.key === "s") { e.preventDefault(); document.getElementById("skip-reason")?.focus(); return; }
    if (e.key === "r") { e.preventDefault(); document.getElementById("rationale")?.focus(); return; }
    if (kind === "pairwise") {
      if (/^[0-7]$/.test(e.key)) {
        const input = f.querySelector(`#preference input[data-key="${e.key}"]`);
        if (input) { e.preventDefault(); input.checked = true; input.focus(); }
        return;
      }
      if (/^[abtn]$/.test(e.key)) { if (choose(currentRow(f, "pairwise-row"), e.key)) e.preventDefault(); }
      return;
    }
    if (kind === "rating") {
      if (/^[0-9n]$/.test(e.key)) { if (choose(currentRow(f, "rating-row"), e.key)) e.preventDefault(); }
      return;
    }
    if (kind === "ranking") {
      const item = el && el.closest(".rank-item");
      if (!item) return;
      if (/^[1-9]$/.test(e.key)) {
        const sel = item.querySelector("select.rank");
        if (sel.querySelector(`option[value="${e.key}"]`)) { e.preventDefault(); sel.value = e.key; item.classList.add("ranked"); }
      } else if (e.key === "0" || e.key === "-") {
        e.preventDefault(); item.querySelector("select.rank").value = ""; item.classList.remove("ranked");
      } else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
        e.preventDefault(); move(item, e.key === "ArrowUp" ? -1 : 1);
      }
    }
  });

  // --- ranking: order by drag or arrows; ranks follow the order unless tied ----
  function renumber(list) {
    // Items keep ties: a run of items that shared a rank before the move keeps sharing it.
    let rank = 0, prev = null;
    list.querySelectorAll(".rank-item").forEach((li) => {
      const sel = li.querySelector("select.rank");
      const old = sel.dataset.prev;
      if (!(prev !== null && old && old === prev)) rank += 1;
      prev = old || null;
      sel.value = String(rank);
      li.classList.add("ranked");
    });
    list.querySelectorAll("select.rank").forEach((s) => { s.dataset.prev = s.value; });
  }
  function move(item, delta) {
    const list = item.parentElement;
    const sibling = delta < 0 ? item.previousElementSibling : item.nextElementSibling;
    if (!sibling) return;
    list.querySelectorAll("select.rank").forEach((s) => { s.dataset.prev = ""; });
    if (delta < 0) list.insertBefore(item, sibling); else list.insertBefore(sibling, item);
    renumber(list);
    item.focus();
  }
  function initRanking(f) {
    const list = f.querySelector("ol.ranking");
    if (!list) return;
    let dragged = null;
    list.addEventListener("dragstart", (e) => { dragged = e.target.closest(".rank-item"); e.dataTransfer.effectAllowed = "move"; e.dataTransfer.setData("text/plain", dragged.dataset.response); });
    list.addEventListener("dragover", (e) => { if (dragged) e.preventDefault(); });
    list.addEventListener("drop", (e) => {
      e.preventDefault();
      const target = e.target.closest(".rank-item");
      if (!dragged || !target || target === dragged) return;
      const after = e.clientY > target.getBoundingClientRect().top + target.offsetHeight / 2;
      list.querySelectorAll("select.rank").forEach((s) => { s.dataset.prev = ""; });
      list.insertBefore(dragged, after ? target.nextElementSibling : target);
      renumber(list);
      dragged = null;
    });
    list.addEventListener("change", (e) => { const li = e.target.closest(".rank-item"); if (li) li.classList.toggle("ranked", !!e.target.value); });
  }

  // --- spans: character offsets into the raw response text -------------------------
  function initSpans(f) {
    const hidden = f.elements["spans"];
    if (!hidden) return;
    let spans = [];
    try { spans = JSON.parse(hidden.value || "[]"); } catch (_) { spans = []; }
    const render = () => {
      hidden.value = JSON.stringify(spans);
      f.querySelectorAll(".spans-row").forEach((row) => {
        const pre = row.querySelector(".spantext");
        const list = row.querySelector(".spanlist");
        const text = pre.dataset.raw ?? pre.textContent;
        pre.dataset.raw = text;
        pre.textContent = "";
        const mine = spans.filter((s) => String(s.response) === pre.dataset.response).sort((a, b) => a.start - b.start);
        let at = 0;
        for (const s of mine) {
          if (s.start < at) continue;
          pre.append(document.createTextNode(text.slice(at, s.start)));
          const mark = document.createElement("mark");
          mark.dataset.type = s.type; mark.title = s.type; mark.textContent = text.slice(s.start, s.end);
          pre.append(mark);
          at = s.end;
        }
        pre.append(document.createTextNode(text.slice(at)));
        list.textContent = "";
        mine.forEach((s) => {
          const li = document.createElement("li");
          li.textContent = `${s.type}: “${text.slice(s.start, s.end)}” (${s.start}–${s.end}) `;
          const rm = document.createElement("button");
          rm.type = "button"; rm.textContent = "remove";
          rm.addEventListener("click", () => { spans.splice(spans.indexOf(s), 1); render(); });
          li.append(rm);
          list.append(li);
        });
      });
    };
    f.querySelectorAll(".spans-row .tag").forEach((btn) => btn.addEventListener("click", () => {
      const row = btn.closest(".spans-row");
      const pre = row.querySelector(".spantext");
      const sel = window.getSelection();
      if (!sel.rangeCount || sel.isCollapsed) return;
      const range = sel.getRangeAt(0);
      if (!pre.contains(range.startContainer) || !pre.contains(range.endContainer)) return;
      const before = document.createRange();
      before.setStart(pre, 0);
      before.setEnd(range.startContainer, range.startOffset);
      const start = before.toString().length;
      const end = start + range.toString().length;
      if (end > start) spans.push({ response: Number(pre.dataset.response), start, end, type: btn.dataset.type });
      sel.removeAllRanges();
      render();
    }));
    render();
  }

  // A rating level's anchor text stays in view once chosen (hover alone hides it
  // from keyboard and touch users): the row's anchor line repeats it.
  document.addEventListener("change", (e) => {
    const row = e.target.closest && e.target.closest("fieldset.rating-row");
    const line = row && row.querySelector(".anchor-line");
    if (!line) return;
    const tip = e.target.closest("label")?.querySelector(".anchor");
    line.textContent = tip ? tip.textContent : "";
  });

  document.addEventListener("DOMContentLoaded", initTask);
  document.addEventListener("htmx:afterSwap", (e) => { if (e.target.id === "task") initTask(); });
})();

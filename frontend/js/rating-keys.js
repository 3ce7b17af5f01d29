// Keyboard shortcuts for the rating page. Controls declare their keys in data-keys
// ("1 ArrowLeft"); Likert and ranking keys fill the form step by step. The listener sits on the
// document, so it keeps working after htmx swaps in the next item.
(function () {
  "use strict";

  function typing(el) {
    if (!el) return false;
    if (el.tagName === "TEXTAREA" || el.isContentEditable) return true;
    return el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type);
  }

  function busy(area) {
    return area.querySelector(".htmx-request") !== null || area.classList.contains("htmx-request");
  }

  // Likert: the first criterion without a score is the current one.
  function likertGroups(area) {
    return Array.from(area.querySelectorAll("fieldset.likert"));
  }
  function markCurrent(area) {
    const groups = likertGroups(area);
    const current = groups.find((g) => !g.querySelector("input:checked"));
    groups.forEach((g) => g.classList.toggle("current", g === current));
  }
  function likertKey(area, key) {
    const groups = likertGroups(area);
    if (/^[1-5]$/.test(key)) {
      const group = groups.find((g) => !g.querySelector("input:checked")) || groups[groups.length - 1];
      const input = group && group.querySelector(`input[value="${key}"]`);
      if (input) input.checked = true;
      markCurrent(area);
      return true;
    }
    if (key === "Backspace") {
      const filled = groups.filter((g) => g.querySelector("input:checked"));
      const last = filled[filled.length - 1];
      if (last) last.querySelector("input:checked").checked = false;
      markCurrent(area);
      return true;
    }
    return false;
  }

  // Ranking: pressing an output's number gives it the next free rank; Backspace takes the last back.
  function rankingKey(area, key) {
    const selects = Array.from(area.querySelectorAll(".ranking select"));
    const ranked = selects.filter((s) => s.value !== "");
    if (/^[1-9]$/.test(key)) {
      const select = selects[Number(key) - 1];
      if (select && select.value === "") select.value = String(ranked.length + 1);
      return Boolean(select);
    }
    if (key === "Backspace") {
      const last = ranked.sort((a, b) => Number(b.value) - Number(a.value))[0];
      if (last) last.value = "";
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const area = document.getElementById("rating-area");
    if (!area) return;
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") {
        target.blur();
        event.preventDefault();
      }
      return;
    }
    if (event.key === "Enter" && target && ["BUTTON", "A", "SELECT"].includes(target.tagName)) return;
    if (busy(area)) {
      event.preventDefault();
      return;
    }
    const mode = area.dataset.mode;
    if (mode === "likert" && area.querySelector("fieldset.likert") && likertKey(area, event.key)) {
      event.preventDefault();
      return;
    }
    if (mode === "ranking" && area.querySelector(".ranking") && rankingKey(area, event.key)) {
      event.preventDefault();
      return;
    }
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const control = area.querySelector(`[data-keys~="${CSS.escape(key)}"]`);
    if (!control) return;
    event.preventDefault();
    if (control.tagName === "TEXTAREA") {
      control.focus();
    } else if (control.type === "submit" && control.form && !control.form.checkValidity()) {
      control.form.reportValidity();
    } else {
      control.click();
    }
  });

  document.addEventListener("htmx:afterSwap", function () {
    const area = document.getElementById("rating-area");
    if (area) markCurrent(area);
  });
  document.addEventListener("DOMContentLoaded", function () {
    const area = document.getElementById("rating-area");
    if (area) markCurrent(area);
  });
})();

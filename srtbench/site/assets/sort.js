// srtbench report: click a column header to sort its table (again: the other way). Numbers sort as numbers (a
// cell's data-value, else the first number of its text), anything else as text; a missing value (empty, or "–"
// first: "– / 99.01 (–)" of a paper table) goes last.
// Rows of class "group" head their <tbody> and stay on top. No library, nothing fetched.
(function () {
  "use strict";
  function key(cell) {
    if (!cell) return { missing: true };
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    var text = raw.trim();
    if (text === "" || text.charAt(0) === "\u2013") return { missing: true };
    var match = text.replace(/\u2212/g, "-").replace(/,/g, "").match(/^[+-]?\d+(\.\d+)?(e[+-]?\d+)?/i);
    return match ? { number: parseFloat(match[0]) } : { text: text.toLowerCase() };
  }
  function compare(a, b) {
    if (a.missing || b.missing) return (a.missing ? 1 : 0) - (b.missing ? 1 : 0);
    if (a.number !== undefined && b.number !== undefined) return a.number - b.number;
    if (a.number !== undefined) return -1;
    if (b.number !== undefined) return 1;
    return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
  }
  function sortBy(table, column, header) {
    var descending = header.getAttribute("aria-sort") === "ascending";
    Array.prototype.forEach.call(table.querySelectorAll("thead th"), function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("group"); });
      var keyed = rows.map(function (r, i) { return { row: r, key: key(r.cells[column]), i: i }; });
      keyed.sort(function (a, b) {
        var missing = (a.key.missing ? 1 : 0) - (b.key.missing ? 1 : 0);
        if (missing) return missing;  // missing last, whichever way
        var c = compare(a.key, b.key);
        return (descending ? -c : c) || a.i - b.i;
      });
      keyed.forEach(function (k) { body.appendChild(k.row); });
    });
  }
  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable, table.results"), function (table) {
      var headers = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1].cells : [];
      Array.prototype.forEach.call(headers, function (th, column) {
        th.tabIndex = 0;
        th.title = "sort by this column";
        th.addEventListener("click", function () { sortBy(table, column, th); });
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, column, th); }
        });
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

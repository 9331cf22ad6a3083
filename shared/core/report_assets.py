"""The report page's inline stylesheet and script (constants: the page is one file and makes no request)."""

REPORT_CSS = """
:root{--open:#1a7f37;--open-bg:#dafbe1;--pend:#9a6700;--pend-bg:#fff8c5;--blk:#cf222e;--blk-bg:#ffebe9;
--na:#8c959f;--na-bg:#f6f8fa;--line:#d0d7de;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328}
body{margin:0;background:#fff}header{background:#0b3d6e;color:#fff;padding:.6rem 1.2rem}h1{font-size:1.3rem;margin:0}
main{padding:0 1.2rem 2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem;border-bottom:1px solid var(--line)}
.cards{display:flex;flex-wrap:wrap;gap:.5rem;margin:1rem 0 .5rem}
.card{border:1px solid var(--line);border-radius:6px;padding:.4rem .8rem;min-width:7rem}
.card b{display:block;font-size:1.3rem}.card span{font-size:.8rem;color:#59636e}
.prov{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;font-size:.85rem;margin:.3rem 0}
.prov dt{color:#59636e}.prov dd{margin:0;overflow-wrap:anywhere}
.ok{color:var(--open);font-weight:600}.bad{color:var(--blk);font-weight:600}.warn{color:var(--pend)}
.hint,.legend{font-size:.85rem;color:#59636e}.legend .cell{display:inline-block;min-width:1.6rem;margin-left:.6rem}
details.circuit{border:1px solid var(--line);border-radius:6px;margin:.5rem 0;padding:.3rem .6rem}
details.circuit summary{cursor:pointer}.host{display:flex;flex-wrap:wrap;gap:1.2rem;align-items:flex-start;
overflow:auto;margin-top:.5rem}
table.matrix{border-collapse:collapse;font-size:.8rem}table.matrix th,table.matrix td{border:1px solid var(--line);
padding:.15rem .3rem;text-align:center;white-space:nowrap}table.matrix th.row{text-align:left;font-weight:normal}
table.matrix th small{color:#59636e}
.cell{border-radius:3px;text-align:center;font-weight:600;cursor:help}
.o{background:var(--open-bg);color:var(--open)}.p{background:var(--pend-bg);color:var(--pend)}
.a,.b,.x{background:var(--blk-bg);color:var(--blk)}.c{background:#eee;color:var(--blk)}
.n,.d{background:var(--na-bg);color:var(--na)}
.pol-f{outline:3px solid var(--blk);outline-offset:-3px}.pol-u{outline:3px dashed var(--pend);outline-offset:-3px}
.legend .pol-f,.legend .pol-u{padding:0 .4rem;margin-left:.6rem}
svg.diagram{flex:none;border:1px solid var(--line);border-radius:6px;background:#fcfcfd}
svg.diagram text{font-size:11px;fill:#1f2328}svg.diagram .hubname{font-size:10px;fill:#59636e}
svg .l-o{stroke:var(--open);stroke-width:3}svg .l-p{stroke:var(--pend);stroke-width:2;stroke-dasharray:2 3}
svg .l-b{stroke:var(--blk);stroke-width:1.5;stroke-dasharray:6 4;opacity:.7}
svg .node{fill:#fff;stroke:#0b3d6e;stroke-width:2}svg .core{fill:#0b3d6e}svg.diagram .core-t{fill:#fff;font-weight:600}
#q{width:min(40rem,100%);padding:.4rem;font-size:1rem;border:1px solid var(--line);border-radius:6px}
table.list{border-collapse:collapse;font-size:.85rem;width:100%;margin-top:.4rem}
table.list th,table.list td{border-bottom:1px solid var(--line);padding:.25rem .4rem;text-align:left;
vertical-align:top}table.list td.num{text-align:right}table.list tr.chg{background:#f6fbff}
table.list tr.fail{background:var(--blk-bg)}tr.pol-f td:first-child{border-left:4px solid var(--blk)}
tr.pol-u td:first-child{border-left:4px solid var(--pend)}.sub{color:#59636e;font-size:.8rem}.scroll{overflow-x:auto}
"""

REPORT_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var D = data.domains, C = data.circuits, T = data.templates, SVG = "http://www.w3.org/2000/svg";
  var policyOf = {};
  data.pairs.forEach(function (p) {
    if (p[6] || p[7]) { policyOf[p[0] + "," + p[1]] = p[6] ? "pol-f" : "pol-u"; }
  });
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function label(i, n) { return n <= 20 ? String.fromCharCode(0x2460 + i) : String(i + 1); }
  function expand(t, names) {
    if (t.charAt(0) === "\ue005") { return t.slice(1); }
    return t.replace(/[\ue000-\ue004]/g, function (ch) { return names[ch.charCodeAt(0) - 0xe000]; });
  }
  function domainText(d) {
    var flags = Object.keys(d.flags).map(function (k) { return k + " = " + d.flags[k]; }).join(", ");
    return d.name + " (" + (d.kind === "wanGateway" ? "Virtual WAN hub " : "hub ") + d.hub + ")\n" +
      d.spokes + (d.kind === "wanGateway" ? " VNet(s) connected" : " spoke(s)") +
      (d.prefixes.length ? "\nprefixes: " + d.prefixes.join(", ") : "") + "\n" + flags +
      "\nsubscription " + d.sub;
  }
  var SYM = {o: "\u21c4", p: "\u25d4", c: "\u2298", n: "\u00b7"};
  function cellInfo(c, i, j) {  // i < j: indexes in the circuit's gateway list
    var n = c.gw.length, k = i * (2 * n - i - 1) / 2 + (j - i - 1), code = c.cells.charAt(k);
    var a = D[c.gw[i]], b = D[c.gw[j]];
    var by = code === "a" ? [i] : code === "b" ? [j] : code === "x" ? [i, j] : [];
    return {code: code, by: by, text: expand(T[c.tips[k]], [a.rep, b.rep, a.name, b.name, c.name])};
  }
  var STATE = {o: "open", p: "pending", a: "blocked", b: "blocked", x: "blocked", c: "blocked", n: "n/a"};
  function matrix(c) {
    var n = c.gw.length, t = el("table", "matrix"), head = t.createTHead().insertRow();
    head.appendChild(el("th", "", c.name));
    c.gw.forEach(function (g, i) {
      var th = el("th", "", label(i, n)); th.title = domainText(D[g]); head.appendChild(th);
    });
    var body = t.createTBody();
    c.gw.forEach(function (g, r) {
      var tr = body.insertRow(), d = D[g], th = el("th", "row");
      th.appendChild(document.createTextNode(label(r, n) + " " + d.hub + " "));
      th.appendChild(el("small", "", d.name + " \u00b7 " + d.spokes + (d.kind === "wanGateway" ? " VNets" : " spokes") +
        (d.prefixes.length ? " \u00b7 " + d.prefixes.join(", ") : "")));
      th.title = domainText(d); th.setAttribute("data-gateway", d.name); tr.appendChild(th);
      for (var col = 0; col < n; col++) {
        var td = tr.insertCell();
        if (col === r) {
          td.className = "cell d"; td.textContent = "\u2014"; td.setAttribute("data-state", "self"); continue;
        }
        var i = Math.min(r, col), j = Math.max(r, col), info = cellInfo(c, i, j);
        var sym = SYM[info.code] || ("\u2715" + info.by.map(function (x) { return label(x, n); }).join(""));
        td.className = "cell " + info.code;
        var gi = Math.min(c.gw[i], c.gw[j]), gj = Math.max(c.gw[i], c.gw[j]), pol = policyOf[gi + "," + gj];
        if (pol && (info.code === "o" || info.code === "p")) { td.className += " " + pol; }
        td.textContent = sym; td.title = info.text;
        td.setAttribute("data-state", STATE[info.code]);
        td.setAttribute("data-row", D[c.gw[r]].name); td.setAttribute("data-col", D[c.gw[col]].name);
        if (info.by.length) {
          td.setAttribute("data-blocked-by", info.by.map(function (x) { return D[c.gw[x]].name; }).join(" "));
        }
      }
    });
    return t;
  }
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function diagram(c) {
    var n = c.gw.length, size = 320, mid = size / 2, rad = 115, pos = [];
    var s = svgEl("svg", {"class": "diagram", width: size, height: size, viewBox: "0 0 " + size + " " + size,
      role: "img"});
    s.appendChild(svgEl("title", {}, "circuit " + c.name + ": open paths solid, blocked dashed"));
    for (var i = 0; i < n; i++) {
      var ang = -Math.PI / 2 + 2 * Math.PI * i / n;
      pos.push([mid + rad * Math.cos(ang), mid + rad * Math.sin(ang)]);
    }
    for (var a = 0; a < n; a++) {
      for (var b = a + 1; b < n; b++) {
        var info = cellInfo(c, a, b), cls = info.code === "o" ? "l-o" : info.code === "p" ? "l-p" :
          info.code === "n" ? "" : "l-b";
        if (!cls) { continue; }
        var line = svgEl("line", {x1: pos[a][0], y1: pos[a][1], x2: pos[b][0], y2: pos[b][1], "class": cls,
          "data-state": STATE[info.code]});
        line.appendChild(svgEl("title", {}, info.text));
        s.appendChild(line);
      }
    }
    s.appendChild(svgEl("circle", {cx: mid, cy: mid, r: 38, "class": "core"}));
    s.appendChild(svgEl("text", {x: mid, y: mid + 4, "text-anchor": "middle", "class": "core-t"},
      c.name.length > 12 ? c.name.slice(0, 11) + "\u2026" : c.name));
    c.gw.forEach(function (g, i) {
      var d = D[g], grp = svgEl("g", {});
      grp.appendChild(svgEl("title", {}, domainText(d)));
      grp.appendChild(svgEl("circle", {cx: pos[i][0], cy: pos[i][1], r: 15, "class": "node"}));
      grp.appendChild(svgEl("text", {x: pos[i][0], y: pos[i][1] + 4, "text-anchor": "middle"}, label(i, n)));
      var below = pos[i][1] >= mid ? 28 : -21, hub = d.hub.length > 18 ? d.hub.slice(0, 17) + "\u2026" : d.hub;
      grp.appendChild(svgEl("text", {x: pos[i][0], y: pos[i][1] + below, "text-anchor": "middle", "class": "hubname"},
        hub));
      s.appendChild(grp);
    });
    return s;
  }
  function draw(det) {
    var host = det.querySelector(".host");
    if (host.firstChild) { return; }
    var c = C[+det.getAttribute("data-circuit")];
    host.appendChild(matrix(c));
    if (c.gw.length <= 12) { host.appendChild(diagram(c)); }
  }
  Array.prototype.forEach.call(document.querySelectorAll("details.circuit"), function (det) {
    if (det.open) { draw(det); }
    det.addEventListener("toggle", function () { if (det.open) { draw(det); } });
  });

  // ---- open paths by domain pair, searchable
  var rows = data.pairs, tbody = document.querySelector("#pair-table tbody"), more = document.getElementById("more");
  var input = document.getElementById("q"), count = document.getElementById("match-count");
  var PAGE = 200, shown = 0, all = rows.map(function (p, k) { return k; }), matches = all;
  var circuitText = rows.map(function (p) {
    return p[2].map(function (k) { return C[k].name; }).join(", ");
  });
  function side(tr, d) {
    var td = tr.insertCell();
    td.appendChild(el("b", "", d.hub));
    td.appendChild(document.createTextNode(" "));
    td.appendChild(el("span", "sub", d.name));
    td.title = domainText(d);
    tr.insertCell().textContent = String(d.spokes);
  }
  function addRows() {
    var end = Math.min(matches.length, shown + PAGE);
    for (var r = shown; r < end; r++) {
      var k = matches[r], p = rows[k], tr = tbody.insertRow();
      tr.setAttribute("data-a", D[p[0]].hub); tr.setAttribute("data-b", D[p[1]].hub);
      side(tr, D[p[0]]);
      tr.insertCell().textContent = "\u21c4";
      side(tr, D[p[1]]);
      tr.insertCell().textContent = circuitText[k];
      var cnt = tr.insertCell(); cnt.className = "num"; cnt.textContent = p[3].toLocaleString("en");
      var pend = tr.insertCell(); pend.className = "num"; pend.textContent = p[4] ? String(p[4]) : "";
      var pol = tr.insertCell();
      if (p[6] || p[7]) {
        tr.className = p[6] ? "pol-f" : "pol-u";
        pol.textContent = (p[6] ? p[6] + " forbidden" : "") + (p[6] && p[7] ? ", " : "") +
          (p[7] ? p[7] + " unexpected" : "");
        pol.title = p[8].join("\n");
      }
    }
    shown = end;
    more.hidden = shown >= matches.length;
  }
  function filter(q) {
    q = q.trim().toLowerCase();
    if (!q) { matches = all; }
    else {
      var hit = D.map(function (d) { return d.search.indexOf(q) >= 0 || d.hub.toLowerCase().indexOf(q) >= 0; });
      matches = all.filter(function (k) {
        var p = rows[k];
        return hit[p[0]] || hit[p[1]] || circuitText[k].toLowerCase().indexOf(q) >= 0;
      });
    }
    tbody.textContent = ""; shown = 0; addRows();
    count.textContent = matches.length.toLocaleString("en") + " of " + rows.length.toLocaleString("en") +
      " domain pairs" + (q ? " match \u201c" + q + "\u201d" : "");
  }
  more.addEventListener("click", addRows);
  input.addEventListener("input", function () { filter(input.value); });
  function fromAddress() {
    var m = /[#?&]q=([^&]*)/.exec(location.hash) || /[?&]q=([^&]*)/.exec(location.search);
    if (!m) { return ""; }
    try { return decodeURIComponent(m[1].replace(/\+/g, " ")); } catch (e) { return ""; }
  }
  input.value = fromAddress();
  filter(input.value);
  window.addEventListener("hashchange", function () { input.value = fromAddress(); filter(input.value); });
}());
"""

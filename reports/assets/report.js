// Renders the evidence matrices and the uPlot charts from DATA.
(function () {
  function shade(u) {
    const ctx = u.ctx;
    ctx.save();
    for (const f of DATA.faults || []) {
      const x0 = u.valToPos(f.start, "x", true), x1 = u.valToPos(f.end, "x", true);
      ctx.fillStyle = "rgba(230, 80, 60, 0.12)";
      ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
      ctx.fillStyle = "rgba(150, 40, 30, 0.8)";
      ctx.font = (10 * devicePixelRatio) + "px sans-serif";
      ctx.fillText(f.label, x0 + 3, u.bbox.top + 12 * devicePixelRatio);
    }
    ctx.restore();
  }
  // the load's seconds without an acknowledged operation, hatched grey
  function unserved(u) {
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = "rgba(90, 90, 90, 0.22)";
    for (const s of DATA.unserved || []) {
      const x0 = u.valToPos(s.start_s, "x", true), x1 = u.valToPos(s.end_s, "x", true);
      ctx.fillRect(x0, u.bbox.top + u.bbox.height * 0.85, Math.max(1, x1 - x0), u.bbox.height * 0.15);
      for (let x = x0; x < x1; x += 8 * devicePixelRatio) {
        ctx.fillRect(x, u.bbox.top, 1.5 * devicePixelRatio, u.bbox.height);
      }
    }
    ctx.restore();
  }
  const width = Math.min(1350, document.body.clientWidth - 48);
  const dots = (label, color) => ({ label, stroke: color, fill: color, paths: () => null, points: { show: true, size: 3, fill: color } });
  if (DATA.lat_x && DATA.lat_x.length) {
    new uPlot({
      title: "latency per operation (ms), by invocation time (s)", width, height: 300,
      scales: { x: { time: false }, y: { distr: 3 } },
      series: [{ label: "s" }, dots("ok", "#1f7a3a"), dots("fail", "#b3261e"), dots("info", "#c9a400")],
      hooks: { drawClear: [shade] },
    }, [DATA.lat_x, DATA.lat_ok, DATA.lat_fail, DATA.lat_info], document.getElementById("latency"));
  }
  if (DATA.rate_x && DATA.rate_x.length) {
    new uPlot({
      title: "operations completed per second", width, height: 220,
      scales: { x: { time: false } },
      series: [{ label: "s" }, { label: "ok", stroke: "#1f7a3a" }, { label: "fail", stroke: "#b3261e" }, { label: "info", stroke: "#c9a400" }],
      hooks: { drawClear: [shade, unserved] },
    }, [DATA.rate_x, DATA.rate_ok, DATA.rate_fail, DATA.rate_info], document.getElementById("rate"));
  }
  const host = document.getElementById("matrices");
  for (const m of DATA.matrices || []) {
    const t = document.createElement("table");
    t.className = "matrix";
    const head = t.insertRow();
    head.insertCell().outerHTML = "<th>node \\ slot</th>";
    for (const s of m.slots) {
      const th = document.createElement("th");
      th.textContent = s === m.index ? s + " (violated)" : String(s);
      head.appendChild(th);
    }
    for (const n of m.nodes) {
      const row = t.insertRow();
      const th = document.createElement("th");
      th.textContent = n;
      row.appendChild(th);
      for (const c of m.cells[n]) {
        const td = row.insertCell();
        td.className = c.mark || "";
        td.textContent = (c.sightings || ["—"]).join("\n");
        td.style.whiteSpace = "pre";
      }
    }
    const h = document.createElement("h3");
    h.textContent = "log slot " + m.index;
    host.appendChild(h);
    host.appendChild(t);
  }
})();

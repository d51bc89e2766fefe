// FramePanel's view (anywidget): an SVG line panel that redraws frame `index` itself.
const NS = "http://www.w3.org/2000/svg";
const MARGIN = { top: 10, right: 12, bottom: 40, left: 56 };

function floats(view) {
  if (!view || !view.byteLength) return new Float32Array(0);
  const bytes = view.buffer ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
                            : new Uint8Array(view);
  return new Float32Array(bytes.slice().buffer);   // aligned copy
}

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function ticks(lo, hi, log) {
  if (log) {
    const out = [];
    for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) out.push(10 ** e);
    return out;
  }
  const span = hi - lo, raw = span / 5, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => span / s <= 6);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(+v.toPrecision(12));
  return out;
}

function label(v, log) {
  if (log) return v >= 1e-2 && v <= 1e3 ? String(+v.toPrecision(3)) : v.toExponential(0);
  return String(+v.toPrecision(4));
}

function render({ model, el: root }) {
  root.classList.add("minimaml-frames");
  const svg = el("svg", { style: "display:block;width:100%;font:11px sans-serif" }, null);
  root.appendChild(svg);
  let width = 0, scaleX, scaleY, framePaths = [], dots = [], legendTexts = [];

  const scale = (range, log, a, b) => {
    const [lo, hi] = range.map(v => (log ? Math.log10(v) : v));
    return v => {
      let t = log ? Math.log10(Math.max(v, 1e-30)) : v;
      t = Math.min(Math.max(t, lo), hi);          // clipped to the visible range
      return a + (b - a) * (t - lo) / (hi - lo);
    };
  };
  const path = (xs, ys) => {
    let d = "";
    for (let i = 0; i < xs.length; i++) {
      if (!Number.isFinite(ys[i])) continue;
      d += (d ? "L" : "M") + scaleX(xs[i]).toFixed(1) + "," + scaleY(ys[i]).toFixed(1);
    }
    return d;
  };

  function drawIndex() {   // only what moves with the index: cheap, no kernel involved
    const x = floats(model.get("x")), n = x.length;
    const [f, c] = model.get("frame_shape");
    const frames = floats(model.get("frames"));
    const i = Math.min(Math.max(model.get("index"), 0), Math.max(f - 1, 0));
    framePaths.forEach((p, k) => p.setAttribute("d", f ? path(x, frames.subarray((i * c + k) * n, (i * c + k + 1) * n)) : ""));
    const stat = floats(model.get("static"));
    const xi = x[Math.min(model.get("index"), n - 1)];
    dots.forEach((dot, k) => {
      const y = stat[k * n + Math.min(model.get("index"), n - 1)];
      dot.setAttribute("cx", scaleX(xi).toFixed(1));
      dot.setAttribute("cy", scaleY(y).toFixed(1));
    });
    legendTexts.forEach((t, k) => {
      const y = stat[k * n + Math.min(model.get("index"), n - 1)];
      t.textContent = `${model.get("legend")[k]} ${Number.isFinite(y) ? +y.toPrecision(3) : "–"}`;
    });
  }

  function drawAll() {
    width = root.clientWidth || 480;
    const height = model.get("height");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("height", height);
    svg.replaceChildren();
    const left = MARGIN.left, right = width - MARGIN.right, top = MARGIN.top, bottom = height - MARGIN.bottom;
    const xr = model.get("x_range"), yr = model.get("y_range");
    scaleX = scale(xr, model.get("log_x"), left, right);
    scaleY = scale(yr, model.get("log_y"), bottom, top);
    const grid = el("g", { stroke: "#e4e4e4" }, svg), axes = el("g", { fill: "#333" }, svg);
    for (const v of ticks(xr[0], xr[1], model.get("log_x"))) {
      el("line", { x1: scaleX(v), x2: scaleX(v), y1: top, y2: bottom }, grid);
      el("text", { x: scaleX(v), y: bottom + 14, "text-anchor": "middle" }, axes).textContent = label(v, model.get("log_x"));
    }
    for (const v of ticks(yr[0], yr[1], model.get("log_y"))) {
      el("line", { x1: left, x2: right, y1: scaleY(v), y2: scaleY(v) }, grid);
      el("text", { x: left - 5, y: scaleY(v) + 4, "text-anchor": "end" }, axes).textContent = label(v, model.get("log_y"));
    }
    el("rect", { x: left, y: top, width: right - left, height: bottom - top, fill: "none", stroke: "#999" }, svg);
    el("text", { x: (left + right) / 2, y: height - 6, "text-anchor": "middle", "font-size": 12 }, axes).textContent = model.get("x_label");
    el("text", { x: 12, y: (top + bottom) / 2, "text-anchor": "middle", "font-size": 12,
                 transform: `rotate(-90 12 ${(top + bottom) / 2})` }, axes).textContent = model.get("y_label");
    const clip = "minimaml-clip-" + Math.random().toString(36).slice(2);
    el("rect", { x: left, y: top, width: right - left, height: bottom - top }, el("clipPath", { id: clip }, el("defs", {}, svg)));
    const plot = el("g", { "clip-path": `url(#${clip})`, fill: "none" }, svg);
    const x = floats(model.get("x")), n = x.length, stat = floats(model.get("static"));
    const colors = model.get("static_colors"), widths = model.get("static_widths");
    for (let k = 0; k < colors.length; k++) {
      el("path", { d: path(x, stat.subarray(k * n, (k + 1) * n)), stroke: colors[k], "stroke-width": widths[k] || 2 }, plot);
    }
    framePaths = model.get("frame_colors").map(color => el("path", { stroke: color, "stroke-width": model.get("frame_width") }, plot));
    const points = floats(model.get("points"));
    for (let k = 0; k + 1 < points.length; k += 2) {
      const px = scaleX(points[k]), py = scaleY(points[k + 1]);
      el("path", { d: `M${px},${py - 5}L${px + 4.5},${py + 3.5}L${px - 4.5},${py + 3.5}Z`, fill: "black" }, svg);
    }
    dots = model.get("dots_at_index") ? colors.map(color => el("circle", { r: 4, fill: color }, svg)) : [];
    legendTexts = model.get("legend").map((_, k) => el("text", { x: right - 6, y: top + 14 + 13 * k, "text-anchor": "end", fill: colors[k] }, svg));
    drawIndex();
  }

  drawAll();
  for (const name of ["x", "static", "static_colors", "static_widths", "frame_colors", "points",
                      "x_range", "y_range", "log_x", "log_y", "x_label", "y_label", "height", "legend"]) {
    model.on(`change:${name}`, drawAll);
  }
  model.on("change:frames", drawIndex);
  model.on("change:frame_shape", drawIndex);
  model.on("change:index", drawIndex);
  const observer = new ResizeObserver(() => { if (Math.abs(root.clientWidth - width) > 1) drawAll(); });
  observer.observe(root);
  return () => observer.disconnect();
}

export default { render };

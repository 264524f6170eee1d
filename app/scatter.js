// The latent map: every utterance as a WebGL point (app/scatter.py mounts it as a Streamlit component).
//
// Python sends the points once per rerun as an Arrow table (x, y, rgba, state and the hover fields); the
// view (zoom, pan), the drawing mode and the selection live here, so a recolour keeps them. Box and lasso
// selections, and a click on a point, go back to Python as row numbers of that table. Where the view holds
// more than `max_points` points, a density image of the points in view is drawn instead, and the points
// appear once a zoom brings the view under that number. Density contours (optional) are drawn over either.

const VERTEX = `attribute vec2 p; attribute vec4 c; uniform vec2 scale, offset; uniform float size, alpha; varying vec4 v;
void main() { gl_Position = vec4(p * scale + offset, 0.0, 1.0); gl_PointSize = size; v = vec4(c.rgb, c.a * alpha); }`;
const FRAGMENT = `precision mediump float; varying vec4 v;
void main() { vec2 d = gl_PointCoord - 0.5; if (dot(d, d) > 0.25) discard; gl_FragColor = v; }`;
const GREY = [190, 190, 190, 150]; // a point outside the selection or the filters
const CONTOUR_MASS = [0.3, 0.6, 0.9]; // each contour encloses the densest cells holding this share of the points in view
const PAD = 12; // pixels between the fitted points and the map's edges, its buttons and its legend
const MARKER_ROOM = 28; // pixels above the top of the fitted view: a star there has its label above it, under the buttons
// Marching squares: the edges (0 top, 1 right, 2 bottom, 3 left) each corner pattern's contour joins, by the
// pattern's bits (8 top-left, 4 top-right, 2 bottom-right, 1 bottom-left corner at or above the level).
const SQUARE_EDGES = [[], [[3, 2]], [[2, 1]], [[3, 1]], [[0, 1]], [[3, 0], [2, 1]], [[0, 2]], [[3, 0]],
                      [[3, 0]], [[0, 2]], [[3, 2], [0, 1]], [[0, 1]], [[3, 1]], [[2, 1]], [[3, 2]], []];

function el(tag, css, parent) {
  const e = document.createElement(tag);
  e.style.cssText = css;
  if (parent) parent.appendChild(e);
  return e;
}

function program(gl) {
  const shader = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(prog);
  return prog;
}

function insidePolygon(x, y, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function build(root) {
  const m = { root, mode: "box", selection: null, view: null, dataKey: null };
  root.style.cssText = "position:relative;font:12px sans-serif;user-select:none";
  m.canvas = el("canvas", "position:absolute;left:0;top:0", root);
  m.overlay = el("canvas", "position:absolute;left:0;top:0;pointer-events:none", root);
  m.labels = el("div", "position:absolute;left:0;top:0;right:0;bottom:0;pointer-events:none;overflow:hidden", root);
  m.tip = el("div", "position:absolute;display:none;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #999;" +
    "padding:4px 6px;border-radius:4px;white-space:pre;z-index:3", root);
  m.legend = el("div", "position:absolute;right:6px;top:36px;max-height:70%;overflow:auto;background:rgba(255,255,255,.88);" +
    "padding:4px 6px;border-radius:4px;z-index:2", root);
  // the buttons on an opaque strip over the map's top: a star or a point panned under it is hidden, never drawn
  // over the buttons (issue 30); the fitted view starts below it
  m.bar = el("div", "position:absolute;left:0;right:0;top:0;padding:3px 6px;z-index:2;display:flex;gap:4px;" +
    "align-items:center;background:rgba(255,255,255,.94);white-space:nowrap;overflow:hidden", root);
  // on a narrow map the status line is cut short (…), not written over the next map on the page
  m.status = el("span", "margin-left:8px;color:#333;min-width:0;overflow:hidden;text-overflow:ellipsis", null);
  for (const [mode, text, tip] of [["box", "Box select", "drag a rectangle"], ["lasso", "Lasso select", "drag around points"],
                                   ["pan", "Pan", "drag to move; the wheel zooms in every mode"]]) {
    const b = el("button", "flex:none", m.bar);
    b.textContent = text; b.title = tip; b.dataset.mode = mode;
    b.onclick = () => { m.mode = mode; paintButtons(m); };
  }
  const reset = el("button", "flex:none", m.bar);
  reset.textContent = "Reset view";
  reset.onclick = () => { fit(m); draw(m); };
  const clear = el("button", "flex:none", m.bar);
  clear.textContent = "Clear selection";
  clear.onclick = () => select(m, null);
  m.bar.appendChild(m.status);
  m.gl = m.canvas.getContext("webgl", { antialias: false });
  m.prog = program(m.gl);
  m.buffers = { p: m.gl.createBuffer(), c: m.gl.createBuffer() };
  attachMouse(m);
  new ResizeObserver(() => resize(m)).observe(root);
  paintButtons(m);
  return m;
}

function paintButtons(m) {
  for (const b of m.bar.querySelectorAll("button[data-mode]")) b.style.fontWeight = b.dataset.mode === m.mode ? "bold" : "normal";
}

function sizeCanvas(m) {
  const w = m.root.clientWidth, h = m.height;
  if (!w) return false;
  for (const c of [m.canvas, m.overlay]) { c.width = w; c.height = h; c.style.width = w + "px"; c.style.height = h + "px"; }
  return true;
}

function resize(m) {
  if (!sizeCanvas(m) || m.n === undefined) return;
  if (m.fitted) fit(m);  // a view nobody zoomed or panned follows the map's size
  draw(m);
}

// Show every point and marker, with the view no zoom or pan has moved since (`m.fitted`): a recolour that
// changes the legend's size fits the view again.
function fit(m) {
  m.view = fitView(m);
  m.fitted = true;
}

// The view that draws every point and marker inside the drawable area (issue 30): below the buttons, with room
// for a star's label above it, and off the legend: beside it or under it, whichever leaves the larger area.
function fitView(m) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  const extend = (x, y) => { if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; };
  for (let i = 0; i < m.n; i++) extend(m.x[i], m.y[i]);
  for (const mk of m.markers || []) extend(mk.x, mk.y);
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const w = m.canvas.width, h = m.canvas.height, g = m.legend;
  let box = { l: PAD, r: w - PAD, t: m.bar.offsetTop + m.bar.offsetHeight + MARKER_ROOM, b: h - PAD };
  if (g.offsetHeight) {
    const area = (b) => Math.max(0, b.r - b.l) * Math.max(0, b.b - b.t);
    const beside = { ...box, r: Math.min(box.r, g.offsetLeft - PAD) };
    const under = { ...box, t: Math.max(box.t, g.offsetTop + g.offsetHeight + PAD) };
    box = area(beside) >= area(under) ? beside : under;
  }
  if (box.r - box.l < 40 || box.b - box.t < 40) box = { l: 0.05 * w, r: 0.95 * w, t: 0.05 * h, b: 0.95 * h };  // too small a map
  // x0 at pixel box.l, x1 at box.r; y1 at box.t, y0 at box.b (see toPixel)
  const hw = ((x1 - x0) * w) / (2 * (box.r - box.l)), hh = ((y1 - y0) * h) / (2 * (box.b - box.t));
  return { cx: x0 - hw * ((2 * box.l) / w - 1), cy: y1 - hh * (1 - (2 * box.t) / h), hw, hh };
}

// data <-> pixel coordinates under the current view
function toPixel(m, x, y) {
  const v = m.view, w = m.canvas.width, h = m.canvas.height;
  return [((x - v.cx) / v.hw + 1) * w / 2, (1 - (y - v.cy) / v.hh) * h / 2];
}
function toData(m, px, py) {
  const v = m.view, w = m.canvas.width, h = m.canvas.height;
  return [v.cx + (px / (w / 2) - 1) * v.hw, v.cy + (1 - py / (h / 2)) * v.hh];
}

function load(m, data) {
  const t = data.points;
  m.x = t.getChild("x").toArray(); m.y = t.getChild("y").toArray();
  const rgba = t.getChild("rgba").toArray();  // uint32 r | g << 8 | b << 16 | a << 24, read as bytes
  m.rgba = new Uint8Array(rgba.buffer, rgba.byteOffset, rgba.byteLength).slice();
  m.state = t.getChild("state").toArray();
  m.table = t; m.n = m.x.length;
  m.fields = data.hover || [];
  m.maxPoints = data.max_points; m.height = data.height;
  m.size = data.size; m.alpha = data.opacity; m.density = data.density; m.contours = data.contours;
  m.markers = data.markers || []; m.clusterLabels = data.labels || [];
  if (data.key !== m.dataKey) {  // another set of points: a new view, no selection
    m.dataKey = data.key; m.view = null; m.selection = null;
  }
  paintLegend(m, data.legend);  // first: the fitted view leaves room for it
  const sized = sizeCanvas(m);
  if (!m.view || m.fitted) fit(m);
  arrange(m);
  if (sized) draw(m);
}

// Upload positions and colours in drawing order: greyed points (outside the filters or the selection) first,
// highlighted ones (search matches) last, on top.
function arrange(m) {
  const rank = new Uint8Array(m.n), start = [0, 0, 0, 0];
  for (let i = 0; i < m.n; i++) {
    rank[i] = m.selection && !m.selection.has(i) ? 0 : m.state[i];
    start[rank[i] + 1]++;
  }
  start[2] += start[1];
  const pos = new Float32Array(2 * m.n), c = new Uint8Array(4 * m.n);
  for (let i = 0; i < m.n; i++) {
    const k = start[rank[i]]++;
    pos[2 * k] = m.x[i]; pos[2 * k + 1] = m.y[i];
    for (let j = 0; j < 4; j++) c[4 * k + j] = rank[i] ? m.rgba[4 * i + j] : GREY[j];
  }
  m.firstHigh = start[1];
  const gl = m.gl;
  gl.bindBuffer(gl.ARRAY_BUFFER, m.buffers.p); gl.bufferData(gl.ARRAY_BUFFER, pos, gl.STATIC_DRAW);
  gl.bindBuffer(gl.ARRAY_BUFFER, m.buffers.c); gl.bufferData(gl.ARRAY_BUFFER, c, gl.STATIC_DRAW);
}

function inView(m) {
  const v = m.view;
  let count = 0;
  for (let i = 0; i < m.n; i++) if (Math.abs(m.x[i] - v.cx) <= v.hw && Math.abs(m.y[i] - v.cy) <= v.hh) count++;
  return count;
}

function draw(m) {
  const gl = m.gl, w = m.canvas.width, h = m.canvas.height, v = m.view;
  gl.viewport(0, 0, w, h); gl.clearColor(1, 1, 1, 1); gl.clear(gl.COLOR_BUFFER_BIT);
  const ctx = m.overlay.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const visible = inView(m), dense = visible > m.maxPoints;
  if (dense || m.density) paintDensity(m, ctx, dense ? 1 : 0.45);
  if (!dense) {
    gl.useProgram(m.prog); gl.enable(gl.BLEND);
    gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);  // the canvas stays opaque
    const loc = (name) => gl.getAttribLocation(m.prog, name), u = (name) => gl.getUniformLocation(m.prog, name);
    gl.bindBuffer(gl.ARRAY_BUFFER, m.buffers.p); gl.enableVertexAttribArray(loc("p")); gl.vertexAttribPointer(loc("p"), 2, gl.FLOAT, false, 0, 0);
    gl.bindBuffer(gl.ARRAY_BUFFER, m.buffers.c); gl.enableVertexAttribArray(loc("c")); gl.vertexAttribPointer(loc("c"), 4, gl.UNSIGNED_BYTE, true, 0, 0);
    gl.uniform2f(u("scale"), 1 / v.hw, 1 / v.hh); gl.uniform2f(u("offset"), -v.cx / v.hw, -v.cy / v.hh);
    gl.uniform1f(u("alpha"), m.alpha);
    gl.uniform1f(u("size"), m.size); gl.drawArrays(gl.POINTS, 0, m.firstHigh);
    gl.uniform1f(u("size"), m.size * 2.2); gl.drawArrays(gl.POINTS, m.firstHigh, m.n - m.firstHigh);
  }
  m.root.dataset.contours = m.contours ? String(paintContours(m, ctx)) : "0";
  paintMarkers(m, ctx);
  paintLabels(m);
  const selected = m.selection ? `, ${m.selection.size.toLocaleString()} selected` : "";
  const contours = m.contours ? ` · contours enclose ${CONTOUR_MASS.map((f) => f * 100).join(", ")} % of them` : "";
  m.status.textContent = (dense ? `${visible.toLocaleString()} points in view: density shown, zoom in to see points`
                                : `${visible.toLocaleString()} of ${m.n.toLocaleString()} points in view`) + contours + selected;
  m.status.title = m.status.textContent;  // the whole line, where the map is too narrow to show it
  m.root.dataset.drawn = dense ? "density" : String(visible);
  m.root.dataset.frames = String(Number(m.root.dataset.frames || 0) + 1);
}

// (gh, gw) counts of the points in view per `cell` x `cell` pixels, row-major from the top left.
function densityGrid(m, cell) {
  const w = m.canvas.width, h = m.canvas.height, gw = Math.ceil(w / cell), gh = Math.ceil(h / cell);
  const grid = new Float32Array(gw * gh);
  let top = 0;
  for (let i = 0; i < m.n; i++) {
    const [px, py] = toPixel(m, m.x[i], m.y[i]);
    if (px < 0 || py < 0 || px >= w || py >= h) continue;
    const g = Math.floor(py / cell) * gw + Math.floor(px / cell);
    if (++grid[g] > top) top = grid[g];
  }
  return { grid, gw, gh, top, cell };
}

function paintDensity(m, ctx, strength) {
  const { grid, gw, gh, top } = densityGrid(m, 4), w = m.canvas.width, h = m.canvas.height;
  const image = ctx.createImageData(gw, gh), scale = Math.log1p(top || 1);
  for (let g = 0; g < grid.length; g++) {
    if (!grid[g]) continue;
    const t = Math.log1p(grid[g]) / scale;
    image.data.set([Math.round(250 - 200 * t), Math.round(250 - 160 * t), Math.round(255 - 60 * t), Math.round(255 * strength * (0.25 + 0.75 * t))], 4 * g);
  }
  const tmp = el("canvas", "", null); tmp.width = gw; tmp.height = gh;
  tmp.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tmp, 0, 0, w, h);
}

// A binomial blur [1 4 6 4 1] / 16 along rows then columns, twice: a density estimate, not a histogram.
function smoothed(grid, gw, gh) {
  let a = grid, b = new Float32Array(grid.length);
  const taps = [1, 4, 6, 4, 1];
  for (let pass = 0; pass < 4; pass++) {
    const along = pass % 2 === 0, n = along ? gw : gh;
    for (let j = 0; j < (along ? gh : gw); j++) {
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let k = -2; k <= 2; k++) {
          const q = Math.min(n - 1, Math.max(0, i + k));
          sum += taps[k + 2] * a[along ? j * gw + q : q * gw + j];
        }
        b[along ? j * gw + i : i * gw + j] = sum / 16;
      }
    }
    [a, b] = [b, a];
  }
  return a;
}

// Highest-density levels: the density above which the densest cells hold `share` of all points in view.
function massLevels(density, shares) {
  const sorted = Float32Array.from(density).sort().reverse();
  let total = 0;
  for (const v of sorted) total += v;
  const levels = [];
  let sum = 0, k = 0;
  for (const share of shares) {
    while (k < sorted.length && sum < share * total) sum += sorted[k++];
    levels.push(sorted[Math.max(0, k - 1)]);
  }
  return levels;
}

// Contour lines of the smoothed density at the CONTOUR_MASS levels; returns the number of segments drawn.
function paintContours(m, ctx) {
  const { grid, gw, gh, cell, top } = densityGrid(m, 6);
  if (!top) return 0;
  const d = smoothed(grid, gw, gh), levels = massLevels(d, CONTOUR_MASS);
  let segments = 0;
  ctx.strokeStyle = "rgba(30, 30, 30, 0.75)";
  levels.forEach((level, n) => {
    if (!(level > 0)) return;
    ctx.lineWidth = 1.8 - 0.4 * n;  // the innermost (densest) contour boldest
    ctx.beginPath();
    for (let j = 0; j + 1 < gh; j++) {
      for (let i = 0; i + 1 < gw; i++) {
        const a = d[j * gw + i], b = d[j * gw + i + 1], c = d[(j + 1) * gw + i + 1], e = d[(j + 1) * gw + i];
        const pattern = (a >= level) << 3 | (b >= level) << 2 | (c >= level) << 1 | (e >= level);
        if (pattern === 0 || pattern === 15) continue;
        const x = (i + 0.5) * cell, y = (j + 0.5) * cell, t = (p, q) => (level - p) / (q - p);
        const point = [() => [x + t(a, b) * cell, y], () => [x + cell, y + t(b, c) * cell],
                       () => [x + t(e, c) * cell, y + cell], () => [x, y + t(a, e) * cell]];
        for (const [from, to] of SQUARE_EDGES[pattern]) {
          ctx.moveTo(...point[from]()); ctx.lineTo(...point[to]());
          segments++;
        }
      }
    }
    ctx.stroke();
  });
  return segments;
}

function paintMarkers(m, ctx) {
  ctx.font = "bold 12px sans-serif"; ctx.textAlign = "center";
  for (const mk of m.markers) {
    const [px, py] = toPixel(m, mk.x, mk.y);
    ctx.beginPath();
    for (let k = 0; k < 10; k++) {
      const r = k % 2 ? 4 : 10, a = (Math.PI / 5) * k - Math.PI / 2;
      ctx.lineTo(px + r * Math.cos(a), py + r * Math.sin(a));
    }
    ctx.closePath(); ctx.fillStyle = mk.colour || "#000"; ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5;
    ctx.fill(); ctx.stroke();
  }
  // Labels in the order given (the caller puts the important ones first), each above, below, right or left of
  // its star where it lies whole on the map and overlaps no label already written, nor the buttons or the
  // legend, else left out: stars landing close together wrote their names over each other (issue 29), a star
  // under the buttons its name over them (issue 30). The boxes written are kept for the browser test.
  m.markerBoxes = [];
  const covered = [m.bar, m.legend].filter((e) => e.offsetHeight).map((e) =>
    ({ x: e.offsetLeft, y: e.offsetTop, w: e.offsetWidth, h: e.offsetHeight }));
  const overlaps = (b, o) => b.x < o.x + o.w && o.x < b.x + b.w && b.y < o.y + o.h && o.y < b.y + b.h;
  ctx.textBaseline = "middle";
  for (const mk of m.markers) {
    if (!mk.label) continue;
    const [px, py] = toPixel(m, mk.x, mk.y), w = ctx.measureText(mk.label).width + 4, h = 15;
    const places = [[px, py - 19], [px, py + 19], [px + 14 + w / 2, py], [px - 14 - w / 2, py]];
    const box = places.map(([x, y]) => ({x: x - w / 2, y: y - h / 2, w, h, label: mk.label})).find(b =>
      b.x >= 0 && b.x + b.w <= m.canvas.width && b.y >= 0 && b.y + b.h <= m.canvas.height &&
      ![...m.markerBoxes, ...covered].some((o) => overlaps(b, o)));
    if (!box) continue;
    m.markerBoxes.push(box);
    ctx.fillStyle = "rgba(255,255,255,.75)"; ctx.fillRect(box.x, box.y, box.w, box.h);
    ctx.fillStyle = "#000"; ctx.fillText(mk.label, box.x + w / 2, box.y + h / 2);
  }
  ctx.textBaseline = "alphabetic";
  if (m.path && m.path.length > 1) {
    ctx.beginPath(); ctx.strokeStyle = "#333"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
    const pts = m.path.map(([x, y]) => toPixel(m, x, y));
    pts.forEach(([px, py], k) => (k ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    if (m.mode !== "pan") ctx.closePath();
    ctx.stroke(); ctx.setLineDash([]);
  }
}

function paintLabels(m) {
  m.labels.textContent = "";
  for (const lb of m.clusterLabels) {
    const [px, py] = toPixel(m, lb.x, lb.y);
    if (px < 0 || py < 0 || px > m.canvas.width || py > m.canvas.height) continue;
    const d = el("div", `position:absolute;left:${px}px;top:${py}px;transform:translate(-50%,-50%);` +
      "background:rgba(255,255,255,.8);padding:1px 4px;border-radius:3px;font-weight:600;white-space:nowrap", m.labels);
    d.className = "cluster-label";
    d.textContent = lb.label;
    // kept whole inside the map, below its buttons and off the legend: a centre near an edge cut its words off
    const top = m.bar.offsetHeight + 4, g = m.legend, { width: w, height: h } = d.getBoundingClientRect();  // fractional, as drawn
    const x = Math.max(w / 2, Math.min(px, m.canvas.width - w / 2));
    let y = Math.max(top + h / 2, Math.min(py, m.canvas.height - h / 2));
    if (g.offsetHeight && x + w / 2 > g.offsetLeft && y - h / 2 < g.offsetTop + g.offsetHeight && y + h / 2 > g.offsetTop) {
      y = g.offsetTop + g.offsetHeight + h / 2 + 2;  // under the legend, which covers the map's top right
    }
    d.style.left = `${x}px`; d.style.top = `${y}px`;
  }
}

function paintLegend(m, legend) {
  m.legend.textContent = "";
  if (!legend) return;
  const title = el("div", "font-weight:600;margin-bottom:2px", m.legend);
  title.className = "legend-title"; title.textContent = legend.title;
  if (legend.stops && legend.stops.length) {  // a colour bar
    const bar = el("div", `height:10px;width:160px;background:linear-gradient(to right,${legend.stops.join(",")})`, m.legend);
    bar.title = legend.title;
    const ends = el("div", "display:flex;justify-content:space-between;width:160px", m.legend);
    el("span", "", ends).textContent = legend.low; el("span", "", ends).textContent = legend.high;
  }
  for (const note of legend.notes || []) {  // "predicted − true", values beyond the bar's ends
    const line = el("div", "max-width:160px;color:#333", m.legend);
    line.className = "legend-note"; line.textContent = note;
  }
  for (const [label, colour] of legend.items || []) {
    const row = el("div", "display:flex;align-items:center;gap:4px", m.legend);
    el("span", `display:inline-block;width:10px;height:10px;border-radius:5px;background:${colour}`, row);
    el("span", "", row).textContent = label;
  }
}

function nearest(m, px, py, radius) {
  let best = -1, bestD = radius * radius;
  for (let i = 0; i < m.n; i++) {
    const [qx, qy] = toPixel(m, m.x[i], m.y[i]);
    const d = (qx - px) ** 2 + (qy - py) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

function hoverText(m, i) {
  const lines = [];
  for (const [name, label, digits] of m.fields) {
    const value = m.table.getChild(name).get(i);
    if (value === null || value === undefined || (typeof value === "number" && isNaN(value))) continue;
    lines.push(`${label}: ${typeof value === "number" && digits !== null ? value.toFixed(digits) : value}`);
  }
  return lines.join("\n");
}

function select(m, rows) {
  m.selection = rows ? new Set(rows) : null;
  m.path = null;
  arrange(m); draw(m);
  m.setState("selection", rows ? { view: m.dataKey, rows: Array.from(rows) } : null);
}

function selectPath(m) {
  const rows = [];
  if (m.mode === "box") {
    const xs = m.path.map((p) => p[0]), ys = m.path.map((p) => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    for (let i = 0; i < m.n; i++) if (m.state[i] && m.x[i] >= x0 && m.x[i] <= x1 && m.y[i] >= y0 && m.y[i] <= y1) rows.push(i);
  } else {
    for (let i = 0; i < m.n; i++) if (m.state[i] && insidePolygon(m.x[i], m.y[i], m.path)) rows.push(i);
  }
  select(m, rows);
}

function attachMouse(m) {
  let down = null, hoverPending = false;
  const at = (e) => { const r = m.canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  m.canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [px, py] = at(e), [x, y] = toData(m, px, py), f = Math.exp(e.deltaY * 0.0015), v = m.view;
    m.view = { cx: x + (v.cx - x) * f, cy: y + (v.cy - y) * f, hw: v.hw * f, hh: v.hh * f };
    m.fitted = false;
    draw(m);
  }, { passive: false });
  m.canvas.addEventListener("mousedown", (e) => {
    const [px, py] = at(e);
    down = { px, py, view: { ...m.view }, moved: false };
    m.path = m.mode === "pan" ? null : [toData(m, px, py)];
  });
  window.addEventListener("mousemove", (e) => {
    const [px, py] = at(e);
    if (down) {
      down.moved ||= Math.hypot(px - down.px, py - down.py) > 4;
      if (m.mode === "pan") {
        const v = down.view, w = m.canvas.width, h = m.canvas.height;
        m.view = { ...v, cx: v.cx - ((px - down.px) / w) * 2 * v.hw, cy: v.cy + ((py - down.py) / h) * 2 * v.hh };
        m.fitted = false;
      } else if (m.mode === "box") {
        const [x0, y0] = m.path[0], [x1, y1] = toData(m, px, py);
        m.path = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
      } else m.path.push(toData(m, px, py));
      draw(m);
      return;
    }
    // the map lives in a shadow root: `e.target` of a window listener is its host, the path names the canvas
    if (e.composedPath()[0] !== m.canvas) { m.tip.style.display = "none"; return; }
    if (hoverPending) return;
    hoverPending = true;
    requestAnimationFrame(() => {
      hoverPending = false;
      const i = nearest(m, px, py, 8);
      if (i < 0) { m.tip.style.display = "none"; return; }
      m.tip.textContent = hoverText(m, i);
      m.tip.style.display = "block";
      m.tip.style.left = Math.min(px + 12, m.canvas.width - 260) + "px"; m.tip.style.top = py + 12 + "px";
    });
  });
  window.addEventListener("mouseup", (e) => {
    if (!down) return;
    const d = down; down = null;
    if (!d.moved) {  // a click: inspect the nearest point
      m.path = null;
      const [px, py] = at(e), i = nearest(m, px, py, 10);
      if (i >= 0) m.trigger("clicked", i);
      draw(m);
    } else if (m.mode !== "pan" && m.path && m.path.length > 2) selectPath(m);
    else { m.path = null; draw(m); }
  });
}

export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  let root = parentElement.querySelector(".latent-map");
  if (!root) {
    root = document.createElement("div");
    root.className = "latent-map";
    parentElement.appendChild(root);
  }
  root.__map ||= build(root);
  const m = root.__map;
  m.setState = setStateValue; m.trigger = setTriggerValue;
  root.style.height = data.height + "px";
  root.dataset.map = data.kind;  // "corpus": a run's map; "live": a training's latest epoch (tests tell them apart)
  const t0 = performance.now();
  load(m, data);
  root.dataset.loadMs = String(Math.round(performance.now() - t0));  // how long the last data took to draw
  root.dataset.loads = String(Number(root.dataset.loads || 0) + 1);  // how often data reached it: a rerun that changes nothing sends none
}

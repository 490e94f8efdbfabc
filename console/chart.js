// Line charts as inline SVG, drawn here (no library, nothing fetched: the console works offline).

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 220;
const PAD = { left: 52, right: 14, top: 28, bottom: 30 };

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// 1, 2 or 5 times a power of ten, at least `rough`.
function niceStep(rough) {
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough);
}

const clock = (ms) => new Date(ms).toISOString().slice(11, 16);

// series: [{name, points: [[timeMs, value|null], ...]}]; x spans `fromMs`..`toMs`.
export function lineChart({ title, unit, series, fromMs, toMs }) {
  const root = svg("svg", {
    class: "chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": title,
  });
  root.append(svg("text", { x: PAD.left, y: 16, "font-weight": "600" }, title));
  const values = series.flatMap((s) => s.points.map(([, v]) => v)).filter((v) => v !== null);
  const max = Math.max(...values, 0);
  const step = niceStep(max > 0 ? max / 4 : 1);
  const top = step * Math.max(1, Math.ceil(max / step));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - fromMs) / Math.max(1, toMs - fromMs)) * plotWidth;
  const y = (v) => PAD.top + plotHeight - (v / top) * plotHeight;
  for (let tick = 0; tick <= top + step / 2; tick += step) {
    root.append(svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick) }));
    const label = Number.isInteger(step) ? String(tick) : tick.toFixed(String(step).split(".")[1].length);
    root.append(svg("text", { x: PAD.left - 6, y: y(tick) + 4, "text-anchor": "end" }, label));
  }
  root.append(svg("text", { x: 4, y: PAD.top - 8 }, unit));
  root.append(svg("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0) }));
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const t = fromMs + fraction * (toMs - fromMs);
    root.append(svg("text", { x: x(t), y: HEIGHT - 10, "text-anchor": "middle" }, clock(t)));
  }
  series.forEach((s, index) => {
    // A gap (no requests in a sample) breaks the line instead of drawing a false zero.
    let path = "";
    let pen = "M";
    for (const [t, v] of s.points) {
      if (v === null) {
        pen = "M";
        continue;
      }
      path += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = "L";
    }
    root.append(svg("path", { class: `line series-${index}`, d: path || "M0,0", "data-series": s.name }));
    for (const [t, v] of s.points) {
      if (v !== null) root.append(svg("circle", { class: `series-${index}`, cx: x(t), cy: y(v), r: 2 }));
    }
    const legendX = WIDTH - PAD.right - 110 * (series.length - index);
    root.append(svg("rect", { class: `series-${index}`, x: legendX, y: 8, width: 10, height: 10 }));
    root.append(svg("text", { class: `series-${index}`, x: legendX + 14, y: 17 }, s.name));
  });
  return root;
}

// A small time-series plot drawn as SVG: a few series sharing one y
// axis, the newest sample on the right.

const NS = "http://www.w3.org/2000/svg";
const W = 600, H = 180, LEFT = 44, RIGHT = 8, TOP = 8, BOTTOM = 18;

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(v >= 1e4 ? 0 : 1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

export class Plot {
  // container: the element to draw in; series: their names; points: how
  // many samples are kept.
  constructor(container, series, points = 120) {
    this.points = points;
    this.data = series.map(() => []);
    this.svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" }, null);
    this.grid = el("g", {}, this.svg);
    this.lines = series.map((name, i) => el("polyline", { class: `line s${i}`, "data-series": name, points: "" }, this.svg));
    container.replaceChildren(this.svg);
    this.draw();
  }

  // push adds one sample: a value per series.
  push(values) {
    values.forEach((v, i) => {
      const d = this.data[i];
      d.push(Number.isFinite(v) ? v : 0);
      if (d.length > this.points) d.shift();
    });
    this.draw();
  }

  draw() {
    const max = niceMax(Math.max(0, ...this.data.flat()));
    this.grid.replaceChildren();
    for (let k = 0; k <= 4; k++) {
      const y = TOP + (H - TOP - BOTTOM) * (1 - k / 4);
      el("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: y, y2: y }, this.grid);
      const t = el("text", { class: "axis", x: LEFT - 6, y: y + 3, "text-anchor": "end" }, this.grid);
      t.textContent = fmt((max * k) / 4);
    }
    const t = el("text", { class: "axis", x: W - RIGHT, y: H - 4, "text-anchor": "end" }, this.grid);
    t.textContent = "now";
    const t2 = el("text", { class: "axis", x: LEFT, y: H - 4 }, this.grid);
    t2.textContent = `-${this.points}s`;
    const dx = (W - LEFT - RIGHT) / (this.points - 1);
    this.data.forEach((d, i) => {
      const off = this.points - d.length;
      const pts = d.map((v, j) => {
        const x = LEFT + (off + j) * dx;
        const y = TOP + (H - TOP - BOTTOM) * (1 - v / max);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      this.lines[i].setAttribute("points", pts.join(" "));
      this.lines[i].setAttribute("data-last", d.length ? String(d[d.length - 1]) : "");
    });
  }
}

// Building the page: elements from data, always as text (never parsed HTML), and formats.

// h("td", {class: "num"}, "12", otherNode): attributes, then children (strings become text).
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// A table: `columns` are [title, cell(row), class?]; a cell may be a string or a node.
export function table(columns, rows, attributes = {}) {
  return h("table", attributes,
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", {}, title)))),
    h("tbody", {}, rows.map((row) =>
      h("tr", {}, columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))));
}

// The page's message when the server refused or failed.
export function failure(error, what) {
  const refused = error.refused
    ? `The server refused ${what} for this key (HTTP ${error.status}): ${error.message}`
    : `Could not load ${what}: ${error.message}`;
  return h("div", { class: "card refused", "data-refused": error.status || "error" },
    h("p", { class: "error" }, refused));
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

export const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));

// A value of a feature vector as text (arrays, maps and structs as JSON).
export const valueText = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v));

// Offers `text` as a file named `name`.
export function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  const link = h("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

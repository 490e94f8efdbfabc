// Repository: every workspace the key may view, with its entities, push sources, feature views
// (features and types, join keys, aggregations, realtime expressions) and feature services.

import { call } from "./api.js";
import { h, table } from "./dom.js";

const KINDS = [
  ["feature_services", "Feature services"],
  ["feature_views", "Feature views"],
  ["entities", "Entities"],
  ["push_sources", "Push sources"],
];

// Properties such as `features.credit_score` grouped under `features`.
function grouped(properties) {
  const groups = new Map();
  for (const [name, value] of Object.entries(properties)) {
    const dot = name.indexOf(".");
    const [group, item] = dot < 0 ? ["", name] : [name.slice(0, dot), name.slice(dot + 1)];
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push([item, value]);
  }
  return groups;
}

function objectCard(name, properties) {
  const groups = grouped(properties);
  const plain = groups.get("") || [];
  const kind = plain.find(([item]) => item === "kind");
  const own = plain.filter(([item]) => item !== "kind");
  const parts = [h("summary", {}, name, " ", kind ? h("span", { class: "pill" }, kind[1]) : null)];
  if (own.length) {
    parts.push(table([["property", ([item]) => item], ["value", ([, value]) => h("code", {}, value)]], own));
  }
  for (const [group, items] of groups) {
    if (!group) continue;
    parts.push(h("h3", {}, group));
    // A service's features are named by their definition: one column says it all.
    parts.push(items.every(([item, value]) => item === value)
      ? h("p", {}, items.map(([item]) => h("code", { class: "pill" }, item)))
      : table([["name", ([item]) => item], ["definition", ([, value]) => h("code", {}, value)]], items));
  }
  return h("details", { class: "card", open: true, "data-object": name }, parts);
}

export async function render(page) {
  const repository = await call("/console/api/repository");
  page.append(h("h1", {}, "Repository"),
    h("p", { class: "muted" }, `Content hash ${repository.hash} (format ${repository.format}).`));
  const workspaces = Object.entries(repository.workspaces);
  if (!workspaces.length) page.append(h("p", {}, "This key may view no workspace."));
  for (const [name, workspace] of workspaces) {
    page.append(h("h2", { "data-workspace": name }, `Workspace ${name} `,
      h("span", { class: workspace.live ? "pill live" : "pill" }, workspace.live ? "live" : "not live")));
    for (const [kind, title] of KINDS) {
      const objects = Object.entries(workspace[kind] || {});
      if (!objects.length) continue;
      page.append(h("h3", {}, `${title} (${objects.length})`),
        ...objects.map(([objectName, properties]) => objectCard(objectName, properties)));
    }
  }
}

// Store: per view rows, bytes, freshness and ingest rate; per shard rows and arena bytes; the
// last hour's request rate and latency percentiles, drawn as charts.

import { call } from "./api.js";
import { lineChart } from "./chart.js";
import { age, bytes, count, h, table } from "./dom.js";

export const REFRESH_SECONDS = 10;

const HOUR_MS = 3600 * 1000;

export async function render(page) {
  const [store, history] = await Promise.all([
    call("/console/api/store"),
    call("/console/api/requests"),
  ]);
  const toMs = Date.parse(store.at);
  const fromMs = toMs - HOUR_MS;
  const samples = history.samples.map((s) => ({ ...s, t: Date.parse(s.at) }));
  page.append(h("h1", {}, "Store"));
  page.append(h("div", { class: "grid" },
    h("div", { class: "card", id: "chart-rate" }, lineChart({
      title: "Requests per second", unit: "req/s", fromMs, toMs,
      series: [{ name: "requests", points: samples.map((s) => [s.t, s.perSecond]) }],
    })),
    h("div", { class: "card", id: "chart-latency" }, lineChart({
      title: "Latency", unit: "ms", fromMs, toMs,
      series: [
        { name: "p50", points: samples.map((s) => [s.t, s.p50Ms]) },
        { name: "p99", points: samples.map((s) => [s.t, s.p99Ms]) },
      ],
    }))));
  page.append(h("p", { class: "muted" },
    `Every request the server answered, sampled every ${history.sampleEverySeconds} s over the last hour (${samples.length} samples so far).`));
  page.append(h("h2", {}, "Feature views"));
  page.append(table([
    ["workspace", (v) => v.workspace],
    ["feature view", (v) => v.featureView],
    ["rows", (v) => count(v.rows), "num"],
    ["bytes", (v) => bytes(v.bytes), "num"],
    ["aggregated keys", (v) => count(v.aggregatedKeys), "num"],
    ["newest event", (v) => v.newestEvent || "–"],
    ["freshness", (v) => age(v.freshnessSeconds), "num"],
    ["ingest rows/s (1 min)", (v) => v.ingestRowsPerSecond.toFixed(2), "num"],
  ], store.views, { id: "views" }));
  page.append(h("h2", {}, "Shards"));
  page.append(table([
    ["shard", (s) => s.shard, "num"],
    ["rows", (s) => count(s.rows), "num"],
    ["arena mapped", (s) => bytes(s.arenaMappedBytes), "num"],
    ["arena live", (s) => bytes(s.arenaLiveBytes), "num"],
    ["arena dead", (s) => bytes(s.arenaDeadBytes), "num"],
  ], store.shards, { id: "shards" }));
}

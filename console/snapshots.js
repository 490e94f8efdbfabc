// Snapshots: the list (id, time, size, rows, verified state), "take one now", and for each the
// command that restores it, to download: restoring stays an offline, deliberate operator action.

import { call } from "./api.js";
import { bytes, count, download, h, table } from "./dom.js";

function restoreCommand(snapshot) {
  return [
    "#!/bin/sh",
    `# Restores Quiver snapshot ${snapshot.id} (taken ${snapshot.createdAt}).`,
    "# Stop the server first: restore refuses a data directory another process holds, and one",
    "# that holds state unless you add --force (which sets the journals aside).",
    'set -eu',
    `quiver snapshot restore --data-dir "\${QUIVER_DATA_DIR:?set QUIVER_DATA_DIR to the server's data directory}" '${snapshot.path.replaceAll("'", "'\\''")}'`,
    "",
  ].join("\n");
}

const rowsOf = (snapshot) => Object.values(snapshot.items || {}).length
  ? Object.entries(snapshot.items).map(([section, n]) => `${section}: ${count(n)}`).join(", ")
  : "–";

async function drawList(target) {
  const listing = await call("/admin/snapshots");
  const rows = listing.snapshots;
  const failed = listing.lastFailure
    ? [h("p", { class: "error" }, `The last snapshot (${listing.lastFailure.id}) failed: ${listing.lastFailure.error}`)]
    : [];
  target.replaceChildren(
    ...failed,
    rows.length ? table([
      ["id", (s) => h("code", {}, s.id)],
      ["taken", (s) => s.createdAt || "–"],
      ["size", (s) => bytes(s.bytes), "num"],
      ["items", rowsOf],
      ["shards", (s) => s.shards ?? "–", "num"],
      ["verified", (s) => (s.checksum === "ok"
        ? h("span", { class: "ok" }, "checksums verified")
        : h("span", { class: "error" }, s.checksum))],
      ["restore", (s) => h("button", {
        type: "button", class: "secondary", "data-restore": s.id,
        onclick: () => download(`restore-${s.id}.sh`, restoreCommand(s)),
      }, "Download command")],
    ], rows, { id: "snapshot-list" }) : h("p", { id: "snapshot-list" }, "No snapshot yet."));
  return rows;
}

export async function render(page) {
  const list = h("div", {});
  const status = h("p", { class: "muted", id: "snapshot-status" });
  const take = h("button", { type: "button", id: "take-snapshot" }, "Take a snapshot now");
  page.append(h("h1", {}, "Snapshots"),
    h("div", { class: "card" }, take, " ", status,
      h("p", { class: "muted" }, "A snapshot is a point-in-time cut of every shard, the directory and the vault (values sealed). Restore it offline with the downloaded command.")),
    list);
  await drawList(list);
  take.addEventListener("click", async () => {
    take.disabled = true;
    try {
      const started = await call("/admin/snapshots", { method: "POST" });
      status.textContent = `Snapshot ${started.id} started…`;
      // The file appears when it is written: poll the list for it (for at most a minute).
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const rows = await drawList(list);
        if (rows.some((s) => s.id === started.id)) {
          status.textContent = `Snapshot ${started.id} written.`;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      status.textContent = `Snapshot ${started.id} is not listed yet: refresh later.`;
    } catch (error) {
      status.textContent = `HTTP ${error.status}: ${error.message}`;
    } finally {
      take.disabled = false;
    }
  });
}

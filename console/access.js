// Access: users, groups and service accounts with their roles (SCIM, admin only: the server
// refuses the data to any other key), then secret scopes and groups with key names and
// versions. No value is ever asked for: only the listing calls, which carry none.

import { call } from "./api.js";
import { failure, h, table } from "./dom.js";

const roles = (resource) => (resource.roles || []).map((r) => h("span", { class: "pill" }, `${r.type}: ${r.value}`));
const groupsOf = (resource) => (resource.groups || []).map((g) => g.display || g.value).join(", ") || "–";
const scim = (resource) => call(`/api/scim/v2/${resource}?count=1000`).then((list) => list.Resources || []);

async function tectonScopes() {
  const { scopes } = await call("/api/v1/secrets-service/scopes");
  return Promise.all((scopes || []).map(async ({ name }) => {
    try {
      const { keys } = await call(`/api/v1/secrets-service/scopes/${encodeURIComponent(name)}/keys`);
      return { name, keys: (keys || []).map((k) => k.name) };
    } catch (error) {
      return { name, keys: [], refused: error.status };
    }
  }));
}

export async function render(page) {
  page.append(h("h1", {}, "Access"));
  let users;
  let groups;
  let accounts;
  try {
    [users, groups, accounts] = await Promise.all([scim("Users"), scim("Groups"), scim("ServiceAccounts")]);
  } catch (error) {
    if (!error.refused) throw error;
    page.append(failure(error, "the directory (users, groups, service accounts: admin keys only)"));
    page.dataset.refused = "true";
    return;
  }
  page.append(h("h2", {}, `Users (${users.length})`), table([
    ["user name", (u) => u.userName],
    ["name", (u) => (u.name ? [u.name.givenName, u.name.familyName].filter(Boolean).join(" ") : "–")],
    ["active", (u) => (u.active === false ? "no" : "yes")],
    ["groups", groupsOf],
    ["roles", roles],
  ], users, { id: "users" }));
  // Members are references: named here from the lists above.
  const names = new Map([
    ...users.map((u) => [u.id, u.userName]),
    ...accounts.map((a) => [a.id, a.name]),
  ]);
  page.append(h("h2", {}, `Groups (${groups.length})`), table([
    ["group", (g) => g.displayName],
    ["members", (g) => (g.members || []).map((m) => m.display || names.get(m.value) || m.value).join(", ") || "–"],
    ["roles", roles],
  ], groups, { id: "groups" }));
  page.append(h("h2", {}, `Service accounts (${accounts.length})`), table([
    ["name", (a) => a.name],
    ["active", (a) => (a.active === false ? "no" : "yes")],
    ["groups", groupsOf],
    ["roles", roles],
  ], accounts, { id: "service-accounts" }));

  page.append(h("h2", {}, "Tecton secret scopes"));
  const scopes = await tectonScopes();
  page.append(table([
    ["scope", (s) => s.name],
    ["keys", (s) => (s.refused ? `(listing refused: HTTP ${s.refused})` : s.keys.join(", ") || "–")],
  ], scopes, { id: "scopes" }));

  page.append(h("h2", {}, "TrueFoundry secret groups"));
  const { data: secretGroups } = await call("/api/svc/v1/secret-groups?limit=1000");
  page.append(table([
    ["group", (g) => g.fqn],
    ["created by", (g) => g.createdBy || "–"],
    ["secrets (versions)", (g) => (g.associatedSecrets || [])
      .map((s) => `${s.name} (v${(s.secretVersions || []).map((v) => v.version).join(", v")})`).join("; ") || "–"],
  ], secretGroups || [], { id: "secret-groups" }));

  page.append(h("h2", {}, "Tinybird secrets"));
  const { secrets } = await call("/v0/secrets");
  page.append(table([
    ["name", (s) => s.name],
    ["updated", (s) => s.updated_at],
    ["edited by", (s) => s.edited_by],
  ], secrets || [], { id: "tinybird-secrets" }));
}

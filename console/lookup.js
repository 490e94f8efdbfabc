// Lookup: GetFeatures for one service and one set of join keys (and request context), showing
// the vector with names, types, statuses and effective times, and the same call as curl and
// Python (with the key left as $KEY: the console never writes a key into the page).

import { call } from "./api.js";
import { h, table, valueText } from "./dom.js";

export function typeText(dataType) {
  if (!dataType) return "–";
  if (dataType.elementType) return `${dataType.type}<${typeText(dataType.elementType)}>`;
  if (dataType.keyType) return `map<${typeText(dataType.keyType)},${typeText(dataType.valueType)}>`;
  if (dataType.fields) {
    return `struct<${dataType.fields.map((f) => `${f.name}:${typeText(f.dataType)}`).join(",")}>`;
  }
  return dataType.type;
}

// A form's text as the JSON value its declared type takes.
function typed(text, dataType) {
  switch (dataType && dataType.type) {
    case "int64":
    case "float64":
    case "float32":
      return text.trim() === "" || Number.isNaN(Number(text)) ? text : Number(text);
    case "boolean":
      return text === "true" ? true : text === "false" ? false : text;
    case "array":
    case "map":
    case "struct":
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    default:
      return text;
  }
}

function snippets(params) {
  const body = JSON.stringify({ params }, null, 2);
  const origin = location.origin;
  const curl = `curl -s ${origin}/api/v1/feature-service/get-features \\\n  -H "Authorization: Tecton-key $KEY" \\\n  -d '${body.replaceAll("'", "'\\''")}'`;
  const python = [
    "import os",
    "from tecton_client import TectonClient",
    `client = TectonClient(url="${origin}", api_key=os.environ["KEY"],`,
    `                      default_workspace_name="${params.workspaceName}")`,
    "resp = client.get_features(",
    `    feature_service_name="${params.featureServiceName}",`,
    `    join_key_map=${JSON.stringify(params.joinKeyMap)},`,
    params.requestContextMap ? `    request_context_map=${JSON.stringify(params.requestContextMap)},` : null,
    ")",
    "print(resp.get_features_dict())",
  ].filter((line) => line !== null).join("\n");
  return h("div", { class: "grid" },
    h("div", {}, h("h3", {}, "curl"), h("pre", { id: "snippet-curl" }, curl)),
    h("div", {}, h("h3", {}, "Python (tecton-client)"), h("pre", { id: "snippet-python" }, python)));
}

function vectorTable(answer) {
  const values = answer.result.features;
  const rows = answer.metadata.features.map((meta, i) => ({ ...meta, value: values[i] }));
  return table([
    ["feature", (f) => f.name],
    ["type", (f) => typeText(f.dataType)],
    ["value", (f) => h("code", {}, f.value === null ? "null" : valueText(f.value))],
    ["status", (f) => h("span", { class: f.status === "PRESENT" ? "ok" : "muted" }, f.status || "–")],
    ["effective time", (f) => f.effectiveTime || "–"],
  ], rows, { id: "vector" });
}

export async function render(page) {
  const repository = await call("/console/api/repository");
  const services = Object.entries(repository.workspaces)
    .filter(([, workspace]) => workspace.live)
    .flatMap(([workspace, w]) => Object.keys(w.feature_services).map((service) => ({ workspace, service })));
  page.append(h("h1", {}, "Lookup"));
  if (!services.length) {
    page.append(h("p", {}, "This key may view no live workspace's services."));
    return;
  }
  const select = h("select", { id: "service" }, services.map(({ workspace, service }) =>
    h("option", { value: `${workspace}/${service}` }, `${workspace} / ${service}`)));
  const inputs = h("div", { class: "form-row", id: "inputs" });
  const result = h("div", { id: "result" });
  const form = h("form", { class: "card", id: "lookup-form" },
    h("div", { class: "form-row" }, h("label", {}, "Feature service", select)),
    inputs,
    h("button", { type: "submit" }, "Get features"));
  page.append(form, result);

  let metadata = null;
  const loadInputs = async () => {
    const [workspace, service] = select.value.split("/");
    metadata = await call(`/api/v2/workspaces/${encodeURIComponent(workspace)}/feature-services/${encodeURIComponent(service)}/metadata`);
    const field = (kind, key) => h("label", {}, `${key.name} (${typeText(key.dataType)})`,
      h("input", { name: `${kind}:${key.name}`, "data-kind": kind, "data-key": key.name }));
    inputs.replaceChildren(
      ...metadata.inputJoinKeys.map((key) => field("join", key)),
      ...(metadata.inputRequestContextKeys || []).map((key) => field("context", key)));
    result.replaceChildren();
  };
  select.addEventListener("change", () => loadInputs().catch((e) => result.replaceChildren(h("p", { class: "error" }, e.message))));
  await loadInputs();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [workspaceName, featureServiceName] = select.value.split("/");
    const joinKeyMap = {};
    const requestContextMap = {};
    for (const input of inputs.querySelectorAll("input")) {
      const kind = input.dataset.kind;
      const keys = kind === "join" ? metadata.inputJoinKeys : metadata.inputRequestContextKeys;
      const declared = keys.find((key) => key.name === input.dataset.key);
      if (input.value === "") continue;
      (kind === "join" ? joinKeyMap : requestContextMap)[input.dataset.key] = typed(input.value, declared.dataType);
    }
    const params = { workspaceName, featureServiceName, joinKeyMap };
    if (Object.keys(requestContextMap).length) params.requestContextMap = requestContextMap;
    params.metadataOptions = {
      includeNames: true, includeDataTypes: true, includeServingStatus: true, includeEffectiveTimes: true,
    };
    result.replaceChildren(h("p", { class: "muted" }, "Asking…"));
    try {
      const answer = await call("/api/v1/feature-service/get-features", { method: "POST", body: { params } });
      result.replaceChildren(h("h2", {}, "Feature vector"), vectorTable(answer), h("h2", {}, "The same call"), snippets(params));
    } catch (error) {
      result.replaceChildren(h("p", { class: "error", id: "lookup-error" }, `HTTP ${error.status}: ${error.message}`),
        h("h2", {}, "The same call"), snippets(params));
    }
  });
}

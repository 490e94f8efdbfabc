// The server's APIs, called with the key kept in this tab's session storage (never elsewhere).

const KEY = "quiver.apiKey";

export const apiKey = () => sessionStorage.getItem(KEY);
export const setApiKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetApiKey = () => sessionStorage.removeItem(KEY);

// A refusal or failure from the server: its status and the message of its body.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  get refused() {
    return this.status === 401 || this.status === 403;
  }
}

// The message of an error body in any of the API families' shapes.
function messageOf(body, status) {
  if (body && typeof body === "object") {
    return body.message || body.detail || body.error || JSON.stringify(body);
  }
  return `HTTP ${status}`;
}

// Calls `path` with the key; answers the JSON body, or throws an ApiError.
export async function call(path, { method = "GET", body, contentType = "application/json" } = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}` };
  if (body !== undefined) headers["Content-Type"] = contentType;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) throw new ApiError(response.status, messageOf(json, response.status));
  return json;
}

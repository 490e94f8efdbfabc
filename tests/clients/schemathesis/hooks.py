"""schemathesis hooks for Quiver: how to send a JSON Lines body (the rows `quiver load` posts
to /admin/workspaces/{workspace}/feature-views/{view}/rows), which schemathesis has no
serializer for. The document's schema of that body is its text."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def json_lines(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    text = value if isinstance(value, str) else json.dumps(value) + "\n"
    return {"data": text.encode("utf8")}

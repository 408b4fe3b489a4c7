import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ApiError, createApi } from "../src/api.js";

function fakeFetch(status, body, headers = {}) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
  };
  return { fetch, calls };
}

describe("the HTTP client", () => {
  test("sends JSON with the Idempotency-Key, same-origin credentials", async () => {
    const { fetch, calls } = fakeFetch(202, { id: "j", status: "pending" });
    const api = createApi({ fetch });
    const job = await api.startExport("p/1", { includeDocumentation: true }, "key-1");
    assert.equal(job.id, "j");
    assert.equal(calls[0].url, "/api/projects/p%2F1/export");
    assert.equal(calls[0].init.method, "POST");
    assert.equal(calls[0].init.credentials, "same-origin");
    assert.equal(calls[0].init.headers["Idempotency-Key"], "key-1");
    assert.deepEqual(JSON.parse(calls[0].init.body), { options: { includeDocumentation: true } });
  });

  test("a 429 carries the server's message and Retry-After", async () => {
    const { fetch } = fakeFetch(429, { success: false, error: "Too many.", code: "RATE_LIMIT_EXCEEDED" }, { "Retry-After": "5" });
    const error = await createApi({ fetch }).startExport("p", {}, null).catch((e) => e);
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 429);
    assert.equal(error.message, "Too many.");
    assert.equal(error.code, "RATE_LIMIT_EXCEEDED");
    assert.equal(error.retryAfter, 5);
  });

  test("a 409 on cancel keeps the job in the body", async () => {
    const { fetch } = fakeFetch(409, { success: false, error: "already completed", code: "CONFLICT", job: { id: "j", status: "completed" } });
    const error = await createApi({ fetch }).cancel("p", "j").catch((e) => e);
    assert.equal(error.status, 409);
    assert.equal(error.body.job.status, "completed");
  });

  test("a 401 tells the app the session ended, except for the sign-in calls", async () => {
    const seen = [];
    const { fetch } = fakeFetch(401, { success: false, error: "Authentication is required.", code: "UNAUTHORIZED" });
    const api = createApi({ fetch, onUnauthorized: (e) => seen.push(e.status) });
    await api.projects().catch(() => {});
    await api.me().catch(() => {});
    await api.login("a@b.c", "x").catch(() => {});
    assert.deepEqual(seen, [401]);
  });

  test("a network failure is status 0 and a 204 is null", async () => {
    const api = createApi({ fetch: async () => { throw new TypeError("offline"); } });
    const error = await api.status("p", "j").catch((e) => e);
    assert.equal(error.status, 0);
    assert.match(error.message, /cannot be reached/);
    const { fetch } = fakeFetch(204, undefined);
    assert.equal(await createApi({ fetch }).discard("p", "j"), null);
  });
});

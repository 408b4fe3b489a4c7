// The HTTP API (DESIGN §3), same origin, authenticated by the httpOnly cookie.
// Every failure is an ApiError carrying the status and the server's
// `{success: false, error, code}` body; a network failure has status 0.

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {any} body
   * @param {Headers|null} headers
   */
  constructor(status, body, headers = null) {
    const message = body && typeof body.error === "string" ? body.error
      : status === 0 ? "The server cannot be reached." : `The request failed (HTTP ${status}).`;
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = body?.code ?? (status === 0 ? "NETWORK_ERROR" : "HTTP_ERROR");
    this.body = body;
    const header = headers?.get?.("Retry-After");
    this.retryAfter = header != null && header !== "" ? Number(header) : (body?.retryAfter ?? null);
  }
}

/**
 * What to tell a person about a failed request: the server's own sentence when it sent one,
 * else the catalogue's words for an unreachable server or an HTTP status.
 * @param {any} error
 * @param {(key: string, params?: object) => string} t
 */
export function errorText(error, t) {
  if (error instanceof ApiError) {
    if (typeof error.body?.error === "string" && error.body.error) return error.body.error;
    return error.status === 0 ? t("error.network") : t("error.http", { status: error.status });
  }
  return t("notice.request-failed");
}

const p = (id) => encodeURIComponent(id);

/**
 * @param {{fetch?: typeof fetch, base?: string, onUnauthorized?: (error: ApiError) => void}} [options]
 */
export function createApi({ fetch: fetchImpl = globalThis.fetch.bind(globalThis), base = "/api", onUnauthorized } = {}) {
  /**
   * @param {string} method
   * @param {string} path
   * @param {{body?: any, headers?: Record<string,string>, quiet401?: boolean}} [init]
   */
  async function call(method, path, { body, headers = {}, quiet401 = false } = {}) {
    let response;
    try {
      response = await fetchImpl(base + path, {
        method,
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ApiError(0, null);
    }
    let data = null;
    if (response.status !== 204) {
      const text = await response.text().catch(() => "");
      if (text) {
        try {
          data = JSON.parse(text);
        } catch {
          data = null;
        }
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data, response.headers);
      if (response.status === 401 && !quiet401) onUnauthorized?.(error);
      throw error;
    }
    return data;
  }

  const job = (projectId, jobId) => `/projects/${p(projectId)}/export/${p(jobId)}`;

  return {
    me: () => call("GET", "/auth/me", { quiet401: true }),
    session: () => call("GET", "/auth/session"),
    login: (email, password) => call("POST", "/auth/login", { body: { email, password }, quiet401: true }),
    logout: () => call("POST", "/auth/logout", { quiet401: true }),
    projects: () => call("GET", "/projects"),
    project: (projectId) => call("GET", `/projects/${p(projectId)}`),
    formats: () => call("GET", "/export/formats"),
    defaults: () => call("GET", "/export/defaults"),
    startExport: (projectId, options, idempotencyKey) => call("POST", `/projects/${p(projectId)}/export`, {
      body: { options },
      headers: idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {},
    }),
    status: (projectId, jobId) => call("GET", `${job(projectId, jobId)}/status`),
    events: (projectId, jobId, after) => call("GET", `${job(projectId, jobId)}/events?after=${Math.max(0, after | 0)}`),
    cancel: (projectId, jobId) => call("POST", `${job(projectId, jobId)}/cancel`),
    downloadToken: (projectId, jobId) => call("POST", `${job(projectId, jobId)}/download-token`),
    discard: (projectId, jobId) => call("DELETE", job(projectId, jobId)),
    createProject: (name) => call("POST", "/projects", { body: { name } }),
    uploadImages: (projectId, form, onProgress) => upload(`${base}/projects/${p(projectId)}/images`, form, onProgress),
    history: (projectId, limit = 20, offset = 0) => call("GET", `/projects/${p(projectId)}/export/history?limit=${limit}&offset=${offset}`),
  };
}

/**
 * A multipart upload with progress (fetch cannot report an upload's progress; XMLHttpRequest can).
 * Resolves with `{ok: true, body}`, or `{ok: false, status, body, message}` for any failure
 * (status 0: the server could not be reached); it never rejects.
 * @param {string} url
 * @param {FormData} form
 * @param {(fraction: number) => void} [onProgress]
 */
export function upload(url, form, onProgress) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.withCredentials = true;
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = request.responseText ? JSON.parse(request.responseText) : null;
      } catch {
        body = null;
      }
      if (request.status >= 200 && request.status < 300) resolve({ ok: true, body });
      else {
        const error = new ApiError(request.status, body);
        resolve({ ok: false, status: request.status, body, message: error.message, error });
      }
    });
    const failed = () => {
      const error = new ApiError(0, null);
      resolve({ ok: false, status: 0, body: null, message: error.message, error });
    };
    request.addEventListener("error", failed);
    request.addEventListener("abort", failed);
    request.send(form);
  });
}

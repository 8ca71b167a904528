// Every call to the daemon's /v1 API: the bearer token from session storage (never a URL,
// never localStorage), JSON in and out, and the API's own error message on failure.
const TOKEN_KEY = 'callbackd.api_token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// An error the API answered ({"error":{"code","message"}}), or one reaching it.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};

// Called with the ApiError whenever the API answers 401 (the token is wrong or gone).
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export async function api(method, path, body, tokenOverride) {
  const headers = { Accept: 'application/json' };
  const bearer = tokenOverride ?? token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach callbackd: ${e.message}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error && data.error.message
      ? new ApiError(response.status, data.error.code, data.error.message)
      : new ApiError(response.status, `http_${response.status}`,
        `${response.status} ${response.statusText || 'error'} from ${path}`);
    if (response.status === 401 && tokenOverride === undefined) unauthorized(error);
    throw error;
  }
  return data;
}

// A query string from the set values of `params`.
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') q.set(key, value);
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

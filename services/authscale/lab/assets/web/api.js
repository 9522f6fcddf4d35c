// The tutorial's browser client, written against authscale's HTTP contract (docs/session.md,
// docs/token.md, /openapi.json): one object per flow, each holding only what that flow needs.
//
// Credentials live in memory, never in localStorage: a script injected into the page could read
// localStorage, and a reload costs nothing here because /session/me and /token/me give a cookie
// flow its CSRF value back. The Bearer flow's tokens are gone after a reload: log in again.

const JSON_TYPE = { "Content-Type": "application/json" };

/** One request; the answer as {method, path, status, replica, body}, never an exception. */
export async function call(api, method, path, { body, headers = {}, credentials } = {}) {
  const init = { method, headers: { ...headers } };
  // "include" sends and keeps cookies across origins (the page and the gateway differ by port);
  // without it fetch uses "same-origin", and the gateway never sees a cookie.
  if (credentials) init.credentials = credentials;
  if (body !== undefined) {
    Object.assign(init.headers, JSON_TYPE);
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(api + path, init);
  } catch (error) {
    // A refused CORS check, an unreachable gateway and the gateway's own errors (429, 502: no
    // CORS headers) look alike to a page.
    const message =
      `no readable answer (${error.message}): the gateway down or refusing (429, 502), ` +
      "or this origin not in AUTHSCALE_CORS_ORIGINS";
    return { method, path, status: 0, replica: "", body: { message } };
  }
  const text = await response.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { message: text };
  }
  // X-Replica is exposed by the replicas' CORS answer; the gateway's own errors carry none.
  const replica = response.headers.get("X-Replica") ?? "gateway";
  return { method, path, status: response.status, replica, body: parsed };
}

/** Session: an HttpOnly cookie the page never sees, and the CSRF value logouts must echo. */
export class SessionFlow {
  constructor(api) {
    this.api = api;
    this.csrf = "";
  }

  describe() {
    return this.csrf ? "logged in: the session cookie is HttpOnly, the CSRF value is in memory" : "logged out";
  }

  async login(username, password) {
    const answer = await this.#send("POST", "/session/login", { body: { username, password } });
    if (answer.status === 200) this.csrf = answer.body.csrf_token;
    return answer;
  }

  /** After a reload: the cookie is still there, the CSRF value comes back from /session/me. */
  async resume() {
    const answer = await this.#send("GET", "/session/me");
    this.csrf = answer.status === 200 ? answer.body.csrf_token : "";
    return answer;
  }

  dashboard() {
    return this.#send("GET", "/session/dashboard");
  }

  logout() {
    return this.#end("/session/logout");
  }

  logoutEverywhere() {
    return this.#end("/session/logout-all");
  }

  async #end(path) {
    const answer = await this.#send("POST", path, { headers: { "X-CSRF-Token": this.csrf } });
    if (answer.status === 200 || answer.status === 401) this.csrf = "";
    return answer;
  }

  #send(method, path, options = {}) {
    return call(this.api, method, path, { ...options, credentials: "include" });
  }
}

/** Token, Bearer: both tokens in the body, the access token sent in Authorization. */
export class BearerFlow {
  constructor(api) {
    this.api = api;
    this.access = "";
    this.refreshToken = "";
  }

  describe() {
    return this.access ? "logged in: access and refresh tokens in memory" : "logged out";
  }

  async login(username, password) {
    return this.#keep(await call(this.api, "POST", "/token/login", { body: { username, password } }));
  }

  async resume() {
    return null;
  }

  dashboard() {
    return call(this.api, "GET", "/token/dashboard", { headers: this.#bearer() });
  }

  /** Every refresh rotates: the token just sent stops working, so keep the new pair. */
  async refresh() {
    const body = { refresh_token: this.refreshToken };
    return this.#keep(await call(this.api, "POST", "/token/refresh", { body }));
  }

  /** Revokes this login's family; the access token still verifies until it expires. */
  async logout() {
    const body = { refresh_token: this.refreshToken };
    return this.#forget(await call(this.api, "POST", "/token/logout", { body }));
  }

  async logoutEverywhere() {
    const headers = this.#bearer();
    return this.#forget(await call(this.api, "POST", "/token/logout-all", { headers }));
  }

  /** No header without a token: "Bearer " alone is a malformed request (400), not a 401. */
  #bearer() {
    return this.access ? { Authorization: `Bearer ${this.access}` } : {};
  }

  #keep(answer) {
    if (answer.status === 200) {
      this.access = answer.body.access_token;
      this.refreshToken = answer.body.refresh_token;
    }
    return answer;
  }

  #forget(answer) {
    if (answer.status === 200) {
      this.access = "";
      this.refreshToken = "";
    }
    return answer;
  }
}

/** Token, cookie mode: both tokens in HttpOnly cookies, the CSRF value echoed on every POST. */
export class CookieFlow {
  constructor(api) {
    this.api = api;
    this.csrf = "";
  }

  describe() {
    return this.csrf ? "logged in: both tokens in HttpOnly cookies, the CSRF value in memory" : "logged out";
  }

  async login(username, password) {
    const answer = await this.#send("POST", "/token/login?mode=cookie", { body: { username, password } });
    if (answer.status === 200) this.csrf = answer.body.csrf_token;
    return answer;
  }

  async resume() {
    const answer = await this.#send("GET", "/token/me");
    this.csrf = answer.status === 200 ? (answer.body.csrf_token ?? "") : "";
    return answer;
  }

  dashboard() {
    return this.#send("GET", "/token/dashboard");
  }

  /** No body: the refresh cookie (Path=/token/refresh) is the token; the CSRF value proves the page. */
  refresh() {
    return this.#send("POST", "/token/refresh", { headers: this.#csrf() });
  }

  logout() {
    return this.#end("/token/logout");
  }

  logoutEverywhere() {
    return this.#end("/token/logout-all");
  }

  async #end(path) {
    const answer = await this.#send("POST", path, { headers: this.#csrf() });
    if (answer.status === 200 || answer.status === 401) this.csrf = "";
    return answer;
  }

  #csrf() {
    return { "X-CSRF-Token": this.csrf };
  }

  #send(method, path, options = {}) {
    return call(this.api, method, path, { ...options, credentials: "include" });
  }
}

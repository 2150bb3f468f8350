// flaskedge browser client: served by the socketio_client handler.
//
// It wraps the socket.io-client the page already loads (passed in, never
// bundled) and turns what a browser hides (why a connection failed) into
// connection states with plain-language errors, using what the edge
// knows: the CONNECT_ERROR data of its namespace rules, the status and
// Retry-After of a refused handshake, and edge_cors's diagnosis.
//
//   import { connect } from "https://edge.example.com/socket.io-edge/client.js";
//   const client = connect(io, { namespace: "/admin", withCredentials: true });
//   client.on("state", ({ state, error }) => show(state, error?.message, error?.action));
//
// States: disconnected, connecting, connected, reconnecting, suspended,
// error, auth_required, cors_error. Every state but connected and
// connecting carries an error {category, message, action, detail}; the
// categories, by state:
//   reconnecting   worker_gone, edge_unreachable, transport_failed, unknown
//   suspended      rate_limited (waits as long as the edge said), background
//   auth_required  not_logged_in, role_missing
//   cors_error     origin_not_allowed, credentials_not_allowed
//   error          refused_by_app, reserved, refused_by_edge, gave_up
//   disconnected   closed_by_server
// Only reconnecting and suspended retry by themselves; the others wait
// for open() or retry().
//
// The connected event also carries recovered: true when the edge's
// Socket.IO connection state recovery gave this connection back its
// session, and with it the packets sent while it was away
// (socket.io-client's socket.recovered); false on a new session, which
// the app sees as a new connection.

export const STATES = Object.freeze([
  "disconnected", "connecting", "connected", "reconnecting",
  "suspended", "error", "auth_required", "cors_error",
]);

const MODULE_URL = new URL(import.meta.url);

// Used when config.json cannot be read.
const FALLBACK_CONFIG = {
  path: "/socket.io/",
  transports: [["websocket"], ["polling"], ["polling", "websocket"]],
  ping_interval_ms: 25000,
  ping_timeout_ms: 20000,
  reconnect: { initial_delay_ms: 500, max_delay_ms: 10000, factor: 2, jitter: 0.5 },
  connect_timeout_ms: 20000,
  transport_failures: 2,
};

// Failure categories whose cause is the transport: enough of them in a
// row move to the next rung of the transport ladder.
const TRANSPORT_CATEGORIES = new Set(["transport_failed", "unknown"]);

/**
 * Connects to a namespace through the edge and keeps the connection up.
 *
 * @param io the page's socket.io-client `io` function
 * @param options
 *   url: the edge's origin; default: the origin this module was loaded from
 *   namespace: default "/"
 *   withCredentials: send the session cookie to a cross-origin edge (default false)
 *   auth, query: passed to socket.io-client
 *   debug: true, or a function(message, details), to log every transition
 *   reconnect: {initial_delay_ms, max_delay_ms, factor, jitter} overrides
 *   transports: the fallback ladder, e.g. [["websocket"], ["polling"]]
 *   transportFailures: failures in a row before the next rung
 *   maxAttempts: attempts in a row that fail to connect after which the
 *     client gives up, in state error with category gave_up (default:
 *     unlimited)
 *   socketOptions: further socket.io-client options
 *   autoConnect: default true
 * @returns EdgeClient
 */
export function connect(io, options = {}) {
  if (typeof io !== "function") {
    throw new TypeError("connect(io, options): pass the page's socket.io-client io function, e.g. connect(window.io, {...})");
  }
  return new EdgeClient(io, options);
}

export class EdgeClient {
  constructor(io, options) {
    this.options = options;
    this.url = (options.url || MODULE_URL.origin).replace(/\/+$/, "");
    this.namespace = options.namespace || "/";
    this.clientBase = options.url ? this.url + clientPathOf(MODULE_URL) : MODULE_URL.href.replace(/[^/]*$/, "");
    this.state = "disconnected";
    this.error = null; // {category, message, action, detail}
    this.diagnosis = null; // edge_cors's answer, when it was asked
    this.socket = null;
    this.config = null;
    this.attempt = 0; // failed attempts since the last connect
    this.tries = 0; // attempts made since the last connect (for maxAttempts)
    this.nextDelay = 0; // ms until the next attempt, when one is scheduled
    this.rung = 0; // index in the transport ladder
    this._io = io;
    this._listeners = new Map();
    this._timer = null;
    this._closed = false;
    this._rungFailures = 0;
    this._waitingFor = null; // what a scheduled attempt waits for
    this._onVisibility = () => this._visibilityChanged();
    this._onOnline = () => this._wake("online");
    if (typeof document !== "undefined") document.addEventListener("visibilitychange", this._onVisibility);
    if (typeof window !== "undefined") window.addEventListener("online", this._onOnline);
    this.ready = this._loadConfig();
    if (options.autoConnect !== false) this.ready.then(() => this.open());
  }

  /**
   * on("state", fn): fn({state, previous, error, delay, transport}), plus
   * retryAfter (seconds) in suspended rate_limited and recovered (boolean)
   * in connected: whether connection state recovery restored the session
   * (socket.io-client's socket.recovered). Returns a function that
   * unsubscribes.
   */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /** The transports of the current rung of the ladder. */
  get transports() {
    return this._ladder()[this.rung];
  }

  /** Opens the connection (again), now. Use it after the user logged in. */
  async open() {
    await this.ready;
    this._closed = false;
    this._clearTimer();
    this._waitingFor = null;
    const fresh = ["disconnected", "auth_required", "cors_error", "error"].includes(this.state);
    if (fresh && this.socket) {
      // A new Engine.IO session, so that a cookie set since (a login)
      // is the one the edge sees: a WebSocket keeps its upgrade's.
      this.socket.off();
      this.socket.disconnect();
      this.socket = null;
    }
    if (!this.socket) this._createSocket();
    if (this.socket.connected) return;
    if (fresh) this.attempt = this.tries = 0;
    this._setState(fresh ? "connecting" : "reconnecting", fresh ? null : this.error);
    this._attempt();
  }

  /**
   * Opens a new Engine.IO session at once, whatever the state: call it
   * after the user logged in or out. A session belongs to the user who
   * opened it, and the edge refuses it to anyone else (a new cookie
   * included), so the new identity needs a new session.
   */
  async retry() {
    await this.ready;
    if (this.socket) {
      this.socket.off();
      this.socket.disconnect();
      this.socket = null;
    }
    return this.open();
  }

  /** Disconnects and stops retrying. */
  close() {
    this._closed = true;
    this._clearTimer();
    this.socket?.disconnect();
    this._setState("disconnected", null);
  }

  /** Asks the edge why a connection fails; resolves to an error object or null. */
  async diagnose() {
    return this._classifyFailure({ status: 0, retryAfter: null });
  }

  // ---- internals ----

  _emit(event, payload) {
    for (const fn of this._listeners.get(event) || []) {
      try { fn(payload); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  _log(message, details) {
    const d = this.options.debug;
    if (!d) return;
    if (typeof d === "function") d(message, details);
    else console.info("[flaskedge] " + message, details ?? "");
  }

  _setState(state, error, extra = {}) {
    const previous = this.state;
    const changed = state !== previous || (error?.category ?? null) !== (this.error?.category ?? null);
    this.state = state;
    this.error = error;
    if (!changed) return;
    const event = { state, previous, error, delay: this.nextDelay, transport: this.socket?.io?.engine?.transport?.name ?? null, ...extra };
    this._log(`${previous} → ${state}` + (error ? ` (${error.category}: ${error.message})` : ""), event);
    this._emit("state", event);
  }

  async _loadConfig() {
    if (this.options.config) {
      this.config = { ...FALLBACK_CONFIG, ...this.options.config };
      return;
    }
    try {
      const res = await fetch(this.clientBase + "config.json", { cache: "no-cache", credentials: "omit" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      this.config = { ...FALLBACK_CONFIG, ...(await res.json()) };
    } catch (err) {
      this.config = { ...FALLBACK_CONFIG };
      this._log("config.json unreadable; using defaults", String(err));
    }
  }

  _ladder() {
    return this.options.transports || this.config.transports;
  }

  _createSocket() {
    const cfg = this.config;
    const opts = {
      ...(this.options.socketOptions || {}),
      path: cfg.path,
      transports: this.transports,
      upgrade: this.transports.length > 1,
      reconnection: false, // this module decides when to retry
      forceNew: true,
      autoConnect: false,
      withCredentials: !!this.options.withCredentials,
      timeout: cfg.connect_timeout_ms,
    };
    if (this.options.auth) opts.auth = this.options.auth;
    if (this.options.query) opts.query = this.options.query;
    const ns = this.namespace === "/" ? "" : this.namespace;
    this.socket = this._io(this.url + ns, opts);
    this.socket.on("connect", () => this._connected());
    this.socket.on("connect_error", (err) => this._connectError(err));
    this.socket.on("disconnect", (reason, details) => this._disconnected(reason, details));
  }

  _attempt() {
    const t = this.transports;
    const mgr = this.socket.io;
    mgr.opts.transports = t;
    mgr.opts.upgrade = t.length > 1;
    this.tries++;
    this._log("attempt " + this.tries + " over " + t.join("+"));
    this.socket.connect();
  }

  _connected() {
    this.attempt = this.tries = 0;
    this.nextDelay = 0;
    this._rungFailures = 0;
    this._waitingFor = null;
    // socket.io-client sets recovered on a CONNECT whose pid is the one
    // it had (undefined when the CONNECT has no pid).
    this._setState("connected", null, { recovered: this.socket?.recovered === true });
  }

  _connectError(err) {
    // Read what the failed XHR holds now: socket.io-client aborts it
    // right after this event.
    const seen = { status: 0, retryAfter: null };
    if (err && err.type === "TransportError" && typeof err.description === "number") {
      seen.status = err.description;
      try { seen.retryAfter = err.context?.getResponseHeader?.("Retry-After") ?? null; } catch { /* aborted */ }
    }
    if (this._closed) return;
    const data = err && err.data;
    if (err && err.type !== "TransportError" && err.message !== "timeout") {
      // A CONNECT_ERROR for the namespace: socket.io-client does not retry it.
      this._fail(refusal(this.namespace, err.message, data));
      return;
    }
    this._log("connect_error", { message: err?.message, status: seen.status });
    this._classifyFailure(seen).then((e) => this._fail(e));
  }

  _disconnected(reason, details) {
    if (this._closed || reason === "io client disconnect") return;
    if (reason === "io server disconnect") {
      this._setState("disconnected", {
        category: "closed_by_server",
        message: "The app closed this connection.",
        action: "Reload the page, or call retry() when the app allows it again.",
        detail: { reason },
      });
      return;
    }
    const closed = closeOf(details);
    const limited = rateLimitOf(closed);
    if (limited !== null) {
      this._schedule(rateLimited(limited, "messages"));
      return;
    }
    const refused = edgeRefusalOf(closed);
    if (refused) {
      this._setState("error", refused);
      return;
    }
    const lost = reason === "ping timeout"
      ? { category: "edge_unreachable", message: `No answer from the server for ${Math.round((this.config.ping_interval_ms + this.config.ping_timeout_ms) / 1000)} s; the network or the edge may be down.`, action: "Reconnecting; check the network if this lasts.", detail: { reason } }
      : { category: "worker_gone", message: "The server process that held this connection went away (a restart, a deploy or a crash).", action: "Reconnecting to another worker; nothing to do.", detail: { reason } };
    this._schedule(lost);
  }

  // _fail moves to the state a failure calls for.
  _fail(e) {
    if (this._closed) return;
    switch (e.category) {
      case "not_logged_in":
      case "role_missing":
        this._setState("auth_required", e);
        return;
      case "origin_not_allowed":
      case "credentials_not_allowed":
        this._setState("cors_error", e);
        return;
      case "refused_by_app":
      case "reserved":
        this._setState("error", e);
        return;
    }
    if (TRANSPORT_CATEGORIES.has(e.category)) {
      if (++this._rungFailures >= (this.options.transportFailures ?? this.config.transport_failures)) {
        this.rung = (this.rung + 1) % this._ladder().length;
        this._rungFailures = 0;
        this._log("falling back to " + this.transports.join("+"));
      }
    }
    this._schedule(e);
  }

  _schedule(e) {
    const max = this.options.maxAttempts;
    if (max > 0 && this.tries >= max) {
      this.socket?.disconnect();
      this._setState("error", {
        category: "gave_up",
        message: `Gave up after ${max} failed attempt${max === 1 ? "" : "s"} to connect; the last one: ${e.message}`,
        action: "Call retry() to try again.",
        detail: { attempts: max, last: e },
      });
      return;
    }
    this.attempt++;
    if (e.category === "rate_limited") {
      const wait = e.detail.retryAfter * 1000;
      this.nextDelay = wait + Math.round(Math.random() * Math.min(1000, wait * 0.1));
      this._waitingFor = "rate_limit";
      this._setState("suspended", e, { retryAfter: e.detail.retryAfter });
    } else {
      const r = { ...FALLBACK_CONFIG.reconnect, ...this.config.reconnect, ...(this.options.reconnect || {}) };
      const base = Math.min(r.max_delay_ms, r.initial_delay_ms * Math.pow(r.factor, this.attempt - 1));
      this.nextDelay = Math.round(Math.min(r.max_delay_ms, base * (1 - r.jitter / 2 + Math.random() * r.jitter)));
      this._waitingFor = "backoff";
      if (typeof document !== "undefined" && document.visibilityState === "hidden") {
        this._waitingFor = "visible";
        this._setState("suspended", { category: "background", message: "The tab is in the background; reconnecting when it is shown again.", action: "Nothing to do.", detail: { after: e } });
        return;
      }
      this._setState("reconnecting", e);
    }
    this._clearTimer();
    this._timer = setTimeout(() => {
      this._timer = null;
      this._waitingFor = null;
      this._attempt();
    }, this.nextDelay);
  }

  _clearTimer() {
    if (this._timer) clearTimeout(this._timer);
    this._timer = null;
  }

  _visibilityChanged() {
    if (document.visibilityState === "hidden") {
      if (this._waitingFor === "backoff") {
        this._clearTimer();
        this._waitingFor = "visible";
        this._setState("suspended", { category: "background", message: "The tab is in the background; reconnecting when it is shown again.", action: "Nothing to do.", detail: { after: this.error } });
      }
      return;
    }
    // Back in front: a connection the browser let die while throttled is
    // noticed by socket.io-client's ping; one that was waiting resumes now.
    this._wake("visible");
  }

  _wake(why) {
    if (this._closed || this._waitingFor === "rate_limit" || !this.socket || this.socket.connected) return;
    if (this._waitingFor === "visible" || this._waitingFor === "backoff") {
      this._log("resuming: " + why);
      this._clearTimer();
      this._waitingFor = null;
      this.nextDelay = 0;
      this._setState("reconnecting", this.error?.category === "background" ? this.error.detail.after : this.error);
      this._attempt();
    }
  }

  // _classifyFailure finds out why a handshake failed. The XHR may have
  // shown its status; a WebSocket shows nothing, so the handshake URL is
  // probed with fetch (readable for allowed origins: edge_cors exposes
  // Retry-After), and when even that is refused, the public client path
  // tells whether the edge is reachable and its diagnosis why not.
  async _classifyFailure(seen) {
    let status = seen.status, retryAfter = seen.retryAfter, body = "";
    if (!status) {
      try {
        const probe = this.url + this.config.path + "?EIO=4&transport=polling&t=" + Date.now().toString(36);
        const res = await fetch(probe, { credentials: this.options.withCredentials ? "include" : "omit", cache: "no-store" });
        status = res.status;
        retryAfter = res.headers.get("Retry-After");
        body = await res.text();
        if (status === 200) this._closeProbeSession(probe, body);
      } catch {
        return this._corsOrUnreachable();
      }
    }
    switch (true) {
      case status === 429:
        return rateLimited(retrySeconds(retryAfter, body), "connections");
      case status === 502 || status === 503:
        return {
          category: "worker_gone",
          message: "The edge is up but none of the app's workers answers.",
          action: "Retrying; if it lasts, the app's operators should check its workers.",
          detail: { status },
        };
      case status === 401:
        return refusal(this.namespace, "", { reason: "unauthenticated", namespace: this.namespace });
      case status === 200:
        return {
          category: "transport_failed",
          message: `The edge accepts connections, but ${this.transports.join("+")} failed from this browser (a proxy or extension may block it).`,
          action: "Retrying, falling back to another transport.",
          detail: { status, transports: this.transports },
        };
    }
    return {
      category: "unknown",
      message: `The edge refused the connection (HTTP ${status}).`,
      action: "Retrying.",
      detail: { status, body: body.slice(0, 200) },
    };
  }

  // _closeProbeSession ends the Engine.IO session a successful probe
  // opened, so it does not linger on a worker until its ping timeout.
  _closeProbeSession(probe, body) {
    try {
      const sid = JSON.parse(body.slice(1)).sid;
      fetch(probe + "&sid=" + encodeURIComponent(sid), {
        method: "POST", body: "1", credentials: this.options.withCredentials ? "include" : "omit",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
      }).catch(() => {});
    } catch { /* not an open packet */ }
  }

  async _corsOrUnreachable() {
    const origin = typeof location !== "undefined" ? location.origin : "(unknown)";
    let reachable = false;
    try {
      reachable = (await fetch(this.clientBase + "config.json", { cache: "no-store", credentials: "omit" })).ok;
    } catch { /* unreachable */ }
    if (!reachable) {
      return {
        category: "edge_unreachable",
        message: `The edge at ${this.url} cannot be reached.`,
        action: "Retrying; check the network, or whether the edge is running.",
        detail: { url: this.url },
      };
    }
    let d = null;
    try {
      const res = await fetch(this.clientBase + "diagnose", { cache: "no-store", credentials: "omit" });
      if (res.ok) d = await res.json();
    } catch { /* diagnostics off */ }
    this.diagnosis = d;
    if (d) this._log("edge diagnosis", d);
    if (d && d.allowed === false) {
      return {
        category: "origin_not_allowed",
        message: `This page's origin, ${origin}, is not allowed to connect to the edge at ${this.url}. ${d.reason}`,
        action: d.fix || `Add ${origin} to edge_cors in the edge's Caddyfile and reload Caddy.`,
        detail: { origin, diagnosis: d },
      };
    }
    if (d && d.allowed && this.options.withCredentials && !d.credentials) {
      return {
        category: "credentials_not_allowed",
        message: `This page sends cookies (withCredentials), but the edge's edge_cors does not allow credentials, so the browser refuses its answers.`,
        action: "Add credentials to edge_cors in the edge's Caddyfile, or connect without withCredentials.",
        detail: { origin, diagnosis: d },
      };
    }
    if (d && d.allowed) {
      return {
        category: "unknown",
        message: `The browser refused the edge's answer although ${origin} is allowed.`,
        action: "Retrying; the browser's console says which header it refused.",
        detail: { origin, diagnosis: d },
      };
    }
    return {
      category: "origin_not_allowed",
      message: `The edge at ${this.url} refused this page's origin, ${origin} (its diagnostics are off, so it cannot say more).`,
      action: `Add ${origin} to edge_cors in the edge's Caddyfile (edge_cors ${origin} …) and reload Caddy.`,
      detail: { origin, diagnosis: null },
    };
  }
}

// closeOf is what a disconnect's details hold of the edge's answer: the
// close frame of a WebSocket ({code, reason}), or the status, Retry-After
// and body of the polling request that failed, read now, before
// socket.io-client aborts it.
function closeOf(details) {
  const ctx = details && details.context;
  if (!ctx) return null;
  if (typeof ctx.code === "number" && "reason" in ctx) return { code: ctx.code, reason: ctx.reason || "" };
  if (typeof details.description === "number" && typeof ctx.getResponseHeader === "function") {
    let retryAfter = null, body = "";
    try { retryAfter = ctx.getResponseHeader("Retry-After"); body = ctx.responseText || ""; } catch { /* aborted */ }
    return { status: details.description, retryAfter, body };
  }
  return null;
}

// rateLimitOf is the wait in seconds when the edge closed the session for
// its message rate (429 on polling, 1008 with "retry after N s" on a
// WebSocket, whose close frame has no Retry-After), else null.
function rateLimitOf(c) {
  if (!c) return null;
  if (c.status === 429) return retrySeconds(c.retryAfter, c.body);
  if (c.code === 1008 && c.reason.startsWith("message rate limit exceeded")) return retrySeconds(null, c.reason);
  return null;
}

// edgeRefusalOf is the error for a session the edge closed because of
// what this page sent: reconnecting would send it again.
function edgeRefusalOf(c) {
  if (!c) return null;
  let why = null;
  if (c.code === 1008) why = c.reason || "a message the edge refuses";
  else if (c.code === 1009) why = "a message larger than the edge's max_payload";
  else if (c.status === 413) why = "a request larger than the edge's max_payload";
  // 400 {"code":3} is the edge's "Bad request"; a 400 with code 1 is an
  // unknown session, a lost worker.
  else if (c.status === 400 && /"code":\s*3\b/.test(c.body)) why = "a request the edge could not read as Socket.IO";
  if (!why) return null;
  return {
    category: "refused_by_edge",
    message: `The edge closed the connection because this page sent ${why.startsWith("a ") ? why : "something it refuses: " + why}.`,
    action: "Not retrying: the page would send it again. Fix what the page sends (the edge's log says more), then call retry().",
    detail: c,
  };
}

// retrySeconds reads a wait the edge gave: Retry-After, else "retry after
// N s" in the text; 30 s when it said nothing.
function retrySeconds(retryAfter, text) {
  let secs = parseInt(retryAfter, 10);
  if (!(secs >= 0)) secs = parseInt((/retry after (\d+)/.exec(text || "") || [])[1], 10);
  return secs >= 0 ? secs : 30;
}

// rateLimited is the error for a rate limit of the edge: too many new
// connections from this address, or too many messages on this one.
function rateLimited(secs, what) {
  return {
    category: "rate_limited",
    message: what === "messages"
      ? `This page sent messages faster than the edge allows, so the edge closed the connection; it asks to wait ${secs} s.`
      : `Too many connection attempts from this address; the edge asks to wait ${secs} s.`,
    action: `Reconnecting in ${secs} s; nothing to do.`,
    detail: { limit: what, retryAfter: secs },
  };
}

// refusal turns a namespace's CONNECT_ERROR into an error.
function refusal(namespace, message, data) {
  const reason = data && data.reason;
  const ns = (data && data.namespace) || namespace;
  if (reason === "unauthenticated") {
    return {
      category: "not_logged_in",
      message: `The ${ns} namespace is for logged-in users, and this browser has no valid session.`,
      action: "Log in, then call retry().",
      detail: { namespace: ns, edgeMessage: message },
    };
  }
  if (reason === "role") {
    const required = [].concat(data.required || []);
    return {
      category: "role_missing",
      message: `The ${ns} namespace requires the role ${required.join(" or ")}, which this user does not have.`,
      action: `Log in as a user with the role ${required.join(" or ")}, then call retry().`,
      detail: { namespace: ns, required, edgeMessage: message },
    };
  }
  if (reason === "reserved") {
    return { category: "reserved", message: `The namespace ${ns} is reserved by the edge.`, action: "Use another namespace.", detail: { namespace: ns } };
  }
  return {
    category: "refused_by_app",
    // python-socketio refuses a namespace it has no handler for with a
    // bare string, which socket.io-client passes on as an empty message.
    message: message
      ? `The app refused the connection to ${ns}: ${message}`
      : `The app refused the connection to ${ns} without saying why (an app that has no handler for ${ns} refuses it so).`,
    action: "See the app's message; retry() once it is resolved.",
    detail: { namespace: ns, data: data ?? null },
  };
}

// clientPathOf is the directory this module was served from.
function clientPathOf(u) {
  return u.pathname.replace(/[^/]*$/, "");
}

// payments-push.js: the browser client of a payments-push gateway.
//
// A plain ES module with no build step and no dependencies, served by every
// gateway at /sdk/payments-push.js (types: /sdk/payments-push.d.ts). A
// shop's checkout page, on any origin the gateway's ALLOWED_ORIGINS lists:
//
//   import { watchPayment } from "https://push.example/sdk/payments-push.js";
//   const watch = watchPayment({ orderId, clientSecret, onSettled: show });
//
// What it promises the page:
// - Each order's final status (succeeded, failed, canceled, expired) is
//   settled exactly once, and each event is handed over at most once, in
//   order: events are de-duplicated by sequence, a poll by status, and a
//   settled watch closes every connection and ignores whatever arrives late.
// - A stream resumes after the last event it saw (`Last-Event-ID`).
// - A silent stream is not trusted. The gateway sends a heartbeat when a
//   stream opens and after every quiet interval. A stream that has spoken
//   and then stays silent for WATCHDOG_INTERVALS intervals is reopened (a
//   frozen gateway, a dead proxy). A stream that never delivers a byte in
//   FIRST_BYTE_INTERVALS intervals is being buffered (or held by a dead
//   upstream), and the watch drops to the next transport.
// - Transports, best first: fetch with a streamed body (the client secret
//   in an Authorization header), then EventSource (which cannot send
//   headers, so its URL carries a short-lived stream token the secret is
//   traded for in a POST body), then polling GET /api/orders/{id} with
//   backoff. A transport that fails twice in a row without a byte is left
//   for the next; the page is told which one is in use (onStatus).
// - The client secret is never put in a URL, and no cookie is used, so a
//   shop on another site needs no third-party cookies.
//
// openEventStream is the stream part alone (no polling, no settling), for
// pages that watch every order, like the gateway's dashboard.

/** @typedef {import("./payments-push").FinalStatus} FinalStatus */
/** @typedef {import("./payments-push").Transport} Transport */
/** @typedef {import("./payments-push").PaymentEvent} PaymentEvent */
/** @typedef {import("./payments-push").WatchOptions} WatchOptions */
/** @typedef {import("./payments-push").Watch} Watch */
/** @typedef {import("./payments-push").StreamOptions} StreamOptions */
/** @typedef {import("./payments-push").StreamEvent} StreamEvent */

/** The statuses after which nothing more happens to an order. */
export const FINAL_STATUSES = Object.freeze(["succeeded", "failed", "canceled", "expired"]);
/** The event names of an order's stream, in the order they can happen. */
export const ORDER_EVENT_TYPES = Object.freeze(["created", "processing", ...FINAL_STATUSES]);
/** Every transport, best first. */
export const TRANSPORTS = Object.freeze(["fetch", "eventsource", "polling"]);

// The gateway's default HEARTBEAT_SECS, until a stream announces its own.
const DEFAULT_HEARTBEAT_SECS = 15;
// Silence after a stream has spoken: reopen it.
const WATCHDOG_INTERVALS = 2.5;
// Silence of a stream that has not spoken yet: buffered, drop a level.
const FIRST_BYTE_INTERVALS = 2;
// Failures in a row, each without a byte, before a transport is left.
const FAILURES_PER_TRANSPORT = 2;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;
const POLL_MIN_MS = 1000;
const POLL_MAX_MS = 10000;
// A request that is not a stream (a token, a poll) gets this long.
const REQUEST_TIMEOUT_MS = 10000;

// The gateway this module was loaded from: the default `gateway`.
const MODULE_GATEWAY = new URL("../", import.meta.url).href;

/** A delay of about `ms`, with jitter so that many pages do not retry together. */
const jittered = (ms) => Math.round(ms * (0.75 + Math.random() * 0.5));

// Statuses move forward only: a late answer never takes the page back.
const rank = (status) => ORDER_EVENT_TYPES.indexOf(status);

/**
 * An incremental text/event-stream parser (the WHATWG algorithm): feed it
 * the body's bytes as they come; it calls `onEvent({ type, data, id })` per
 * dispatched event and `onRetry(ms)` per valid `retry:` field.
 * @param {{ onEvent: (event: { type: string, data: string, id: string }) => void, onRetry?: (ms: number) => void }} handlers
 */
export function createSseParser({ onEvent, onRetry }) {
  const decoder = new TextDecoder();
  let pending = "";
  let skipLineFeed = false; // the last chunk ended in "\r": a "\n" next belongs to it
  let type = "";
  let data = [];
  let id = "";

  function field(line) {
    if (line === "") {
      if (data.length > 0) onEvent({ type: type || "message", data: data.join("\n"), id });
      type = "";
      data = [];
      return;
    }
    if (line.startsWith(":")) return; // a comment
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") type = value;
    else if (name === "data") data.push(value);
    else if (name === "id" && !value.includes("\0")) id = value;
    else if (name === "retry" && /^\d+$/.test(value)) onRetry?.(Number(value));
  }

  return {
    /** @param {Uint8Array} bytes */
    push(bytes) {
      let text = pending + decoder.decode(bytes, { stream: true });
      if (skipLineFeed && text.startsWith("\n")) text = text.slice(1);
      skipLineFeed = false;
      let start = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (c !== "\n" && c !== "\r") continue;
        field(text.slice(start, i));
        if (c === "\r") {
          if (i + 1 === text.length) skipLineFeed = true;
          else if (text[i + 1] === "\n") i++;
        }
        start = i + 1;
      }
      pending = text.slice(start);
    },
  };
}

/** A sequence as a BigInt (sequences are u64, past 2^53), or null. */
function sequenceOf(id) {
  return /^\d{1,20}$/.test(id) ? BigInt(id) : null;
}

/**
 * Opens an event stream on the best transport that works, with the
 * watchdog, resume and fallback described at the top of this file.
 * @param {StreamOptions} options
 * @returns {{ close(): void, readonly transport: Transport | null }}
 */
export function openEventStream(options) {
  const transports = (options.transports ?? ["fetch", "eventsource"])
    .filter((t) => t === "fetch" || (t === "eventsource" && typeof EventSource === "function"));
  const types = [...new Set([...(options.types ?? []), "message"])];
  let heartbeatMs = (options.heartbeatSecs ?? DEFAULT_HEARTBEAT_SECS) * 1000;
  let lastEventId = options.lastEventId ?? "";
  let level = 0; // index into transports
  let failures = 0; // of the transport at `level`, in a row, without a byte
  let retryMs = RETRY_MIN_MS; // the server's `retry:`, or ours
  let eventSourceUrl = null; // reused until the gateway refuses it
  let closed = false;
  let current = null; // the connection in use: { heard, lastHeard, stop() }
  let timer = 0;

  const transport = () => transports[level] ?? null;
  const status = (state, extra) => options.onStatus?.({ state, transport: transport(), ...extra });

  function heard(connection) {
    connection.lastHeard = performance.now();
    if (!connection.heard) {
      connection.heard = true;
      failures = 0;
      status("live");
    }
  }

  function dispatch(connection, { type, data, id }) {
    if (connection !== current || closed) return;
    heard(connection);
    if (type === "heartbeat") {
      try {
        const ms = JSON.parse(data).interval_ms;
        if (Number.isFinite(ms) && ms > 0) heartbeatMs = ms;
      } catch { /* keep the interval we have */ }
      return;
    }
    const sequence = sequenceOf(id);
    const last = sequenceOf(lastEventId);
    if (sequence !== null && last !== null && sequence <= last) return; // seen already
    if (id) lastEventId = id;
    let parsed = data;
    try { parsed = JSON.parse(data); } catch { /* not JSON: handed over as text */ }
    options.onEvent({ type, data: parsed, id: id || null, transport: transport() });
  }

  // The connection ended or failed. `spoke`: it delivered bytes first, so
  // the transport works and the stream is simply reopened.
  function ended(connection, { spoke, fatal }) {
    if (connection !== current || closed) return;
    current = null;
    connection.stop();
    if (fatal) {
      closed = true;
      clearInterval(watchdog);
      status("failed", { error: fatal });
      options.onFatal?.(fatal);
      return;
    }
    if (spoke) return later(retryMs, "reconnecting");
    failures += 1;
    if (failures < FAILURES_PER_TRANSPORT) return later(retryMs, "reconnecting");
    dropLevel();
  }

  function dropLevel() {
    level += 1;
    failures = 0;
    eventSourceUrl = null;
    if (transport() === null) {
      closed = true;
      clearInterval(watchdog);
      options.onExhausted?.({ lastEventId });
      return;
    }
    connect();
  }

  function later(ms, state) {
    status(state);
    clearTimeout(timer);
    timer = setTimeout(connect, jittered(ms));
  }

  function connect() {
    if (closed) return;
    const connection = { heard: false, lastHeard: performance.now(), stop() {} };
    current = connection;
    status("connecting");
    if (transport() === "fetch") viaFetch(connection);
    else viaEventSource(connection);
  }

  async function viaFetch(connection) {
    const controller = new AbortController();
    connection.stop = () => controller.abort();
    const headers = { Accept: "text/event-stream", ...options.headers };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response;
    try {
      response = await fetch(options.url, {
        headers,
        credentials: options.credentials ?? "omit",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch {
      return ended(connection, { spoke: false }); // unreachable, refused by CORS, or stopped
    }
    const fatal = fatalError(response.status);
    if (fatal) return ended(connection, { fatal });
    if (response.status === 204) {
      // The gateway says we have its last event already: nothing will come.
      if (connection !== current) return;
      closed = true;
      clearInterval(watchdog);
      current = null;
      return options.onEnded?.({ lastEventId });
    }
    const type = response.headers.get("content-type") ?? "";
    if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
      controller.abort();
      return ended(connection, { spoke: false });
    }
    const parser = createSseParser({
      onEvent: (event) => dispatch(connection, event),
      onRetry: (ms) => { retryMs = Math.min(Math.max(ms, RETRY_MIN_MS), RETRY_MAX_MS); },
    });
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || connection !== current) break;
        heard(connection); // any byte, a retry: frame too, proves nothing buffers it
        parser.push(value);
      }
    } catch { /* a dropped connection, or stopped */ }
    ended(connection, { spoke: connection.heard });
  }

  async function viaEventSource(connection) {
    const controller = new AbortController();
    connection.stop = () => controller.abort();
    const fresh = eventSourceUrl === null;
    if (fresh) {
      try {
        const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
        eventSourceUrl = typeof options.eventSourceUrl === "function"
          ? await options.eventSourceUrl(signal)
          : options.eventSourceUrl ?? options.url;
      } catch (error) {
        return ended(connection, { spoke: false, fatal: error?.fatal });
      }
      if (connection !== current || closed) return;
      connection.lastHeard = performance.now(); // the watchdog counts from the stream, not the token
    }
    const target = new URL(eventSourceUrl, location.href);
    if (lastEventId) target.searchParams.set("last_event_id", lastEventId);
    const source = new EventSource(target, { withCredentials: options.credentials === "include" });
    let opened = false;
    connection.stop = () => source.close();
    source.onopen = () => { opened = true; };
    source.onerror = () => {
      // We reconnect ourselves, so every reconnect gets the same rules.
      source.close();
      if (connection !== current) return;
      if (!opened && !connection.heard && !fresh) {
        // A URL that worked before is refused: its token expired. Get a
        // new one, once; a fresh one refused is a failure.
        eventSourceUrl = null;
        current = null;
        return later(0, "reconnecting");
      }
      if (!opened) eventSourceUrl = null;
      // Opened and ended without an event: the gateway said "retry" (it is
      // starting, or full), which is no fault of the transport.
      ended(connection, { spoke: connection.heard || opened });
    };
    for (const type of [...types, "heartbeat"]) {
      source.addEventListener(type, (message) =>
        dispatch(connection, { type, data: message.data, id: message.lastEventId }));
    }
  }

  // One timer for the watchdog of whichever connection is current.
  const watchdog = setInterval(() => {
    const connection = current;
    if (closed || !connection) return;
    const silent = performance.now() - connection.lastHeard;
    if (!connection.heard && silent > FIRST_BYTE_INTERVALS * heartbeatMs) {
      // Not a byte in two heartbeats: a proxy buffers the stream (or the
      // gateway never answered). Next transport.
      current = null;
      connection.stop();
      dropLevel();
    } else if (connection.heard && silent > WATCHDOG_INTERVALS * heartbeatMs) {
      // It spoke, then went quiet: frozen. Reopen; the proxy may send the
      // request elsewhere.
      current = null;
      connection.stop();
      status("reconnecting");
      connect();
    }
  }, 250);

  // Never a callback before the caller has the handle.
  queueMicrotask(() => {
    if (closed) return;
    if (transport() !== null) return connect();
    closed = true;
    clearInterval(watchdog);
    options.onExhausted?.({ lastEventId });
  });

  return {
    close() {
      closed = true;
      clearInterval(watchdog);
      clearTimeout(timer);
      current?.stop();
      current = null;
    },
    get transport() { return closed ? null : transport(); },
  };
}

/** The error that ends a watch for good, for an HTTP status, or null. */
function fatalError(status) {
  if (status === 401) return { code: "unauthorized", status, message: "The gateway refused the credentials." };
  if (status === 404) return { code: "not_found", status, message: "The gateway does not know this order." };
  if (status === 400) return { code: "bad_request", status, message: "The gateway refused the request." };
  return null;
}

/**
 * Watches one order until its final status, which `onSettled` gets exactly
 * once. See the top of this file and payments-push.d.ts for every option.
 * @param {WatchOptions} options
 * @returns {Watch}
 */
export function watchPayment(options) {
  const { orderId, clientSecret } = options ?? {};
  if (typeof orderId !== "string" || orderId === "") throw new TypeError("watchPayment: orderId is required");
  if (typeof clientSecret !== "string" || clientSecret === "") throw new TypeError("watchPayment: clientSecret is required");
  const gateway = new URL(String(options.gateway ?? MODULE_GATEWAY).replace(/\/?$/, "/"), location.href);
  const orderUrl = new URL(`api/orders/${encodeURIComponent(orderId)}`, gateway).href;
  const authorization = { Authorization: `Bearer ${clientSecret}` };
  const wanted = options.transports ?? TRANSPORTS;

  let settled = false;
  let closed = false;
  let lastStatus = null;
  let lastSequence = null;
  let transport = null;
  let state = "connecting";
  let stream = null;
  let pollTimer = 0;
  let pollController = null;
  let resolveSettled;
  const settledPromise = new Promise((resolve) => { resolveSettled = resolve; });

  function setStatus(next) {
    if (closed && next.state !== "settled" && next.state !== "failed") return;
    state = next.state;
    transport = next.transport ?? null;
    options.onStatus?.({ state, transport, ...(next.error ? { error: next.error } : {}) });
  }

  function stop() {
    closed = true;
    stream?.close();
    stream = null;
    clearTimeout(pollTimer);
    pollController?.abort();
  }

  // The one door every event comes through, whatever carried it.
  function deliver(event) {
    if (settled || closed) return;
    const sequence = event.sequence === null ? null : BigInt(event.sequence);
    if (sequence !== null) {
      if (lastSequence !== null && sequence <= lastSequence) return;
      lastSequence = sequence;
    } else if (event.status === lastStatus) {
      return; // a poll that saw nothing new
    }
    if (lastStatus !== null && rank(event.status) < rank(lastStatus)) return;
    lastStatus = event.status;
    options.onEvent?.(event);
    if (!FINAL_STATUSES.includes(event.status)) return;
    settled = true;
    stop();
    setStatus({ state: "settled", transport: event.transport });
    const result = Object.freeze({
      orderId, status: event.status, reason: event.reason, occurredAt: event.occurredAt,
      sequence: event.sequence,
    });
    options.onSettled?.(result);
    resolveSettled(result);
  }

  function fail(error) {
    if (settled || closed) return;
    stop();
    setStatus({ state: "failed", transport, error });
    options.onError?.(error);
  }

  function fromStream({ type, data, id, transport: via }) {
    if (!ORDER_EVENT_TYPES.includes(type) || typeof data !== "object" || data === null) return null;
    if (data.order_id && data.order_id !== orderId) return null;
    return {
      type, status: String(data.status ?? type).toLowerCase(), orderId,
      sequence: id, reason: data.reason ?? "", occurredAt: data.occurred_at ?? "",
      transport: via, data,
    };
  }

  // ---- the lowest level: polling GET /api/orders/{id} ----
  function startPolling() {
    if (closed) return;
    stream = null;
    if (!wanted.includes("polling")) return fail({ code: "unavailable", message: "No transport could reach the gateway." });
    let delay = POLL_MIN_MS;
    const poll = async () => {
      if (closed) return;
      pollController = new AbortController();
      const signal = AbortSignal.any([pollController.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
      let order = null;
      try {
        const response = await fetch(orderUrl, {
          headers: { Accept: "application/json", ...authorization },
          credentials: "omit", cache: "no-store", signal,
        });
        const fatal = fatalError(response.status);
        if (fatal) return fail(fatal);
        if (response.ok) order = await response.json();
      } catch { /* unreachable or slow: the next poll may do better */ }
      if (closed) return;
      if (order && typeof order.status === "string") {
        const before = lastStatus;
        setStatus({ state: "live", transport: "polling" });
        deliver({
          type: order.status, status: order.status, orderId, sequence: null,
          reason: order.reason ?? "", occurredAt: order.updated_at ?? "", transport: "polling", data: order,
        });
        delay = lastStatus !== before ? POLL_MIN_MS : Math.min(delay * 2, POLL_MAX_MS);
      } else {
        setStatus({ state: "reconnecting", transport: "polling" });
        delay = Math.min(delay * 2, POLL_MAX_MS);
      }
      if (!closed) pollTimer = setTimeout(poll, jittered(delay));
    };
    setStatus({ state: "connecting", transport: "polling" });
    poll();
  }

  // ---- the stream levels ----
  const tokenUrl = async (signal) => {
    const response = await fetch(`${orderUrl}/stream-tokens`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ client_secret: clientSecret }),
      credentials: "omit", cache: "no-store", signal,
    });
    if (!response.ok) {
      const error = new Error(`stream token refused: HTTP ${response.status}`);
      error.fatal = fatalError(response.status) ?? undefined;
      throw error;
    }
    return new URL((await response.json()).events_url, gateway).href;
  };

  stream = openEventStream({
    url: `${orderUrl}/events`,
    headers: authorization,
    credentials: "omit",
    eventSourceUrl: tokenUrl,
    types: ORDER_EVENT_TYPES,
    transports: wanted.filter((t) => t !== "polling"),
    lastEventId: options.lastEventId,
    heartbeatSecs: options.heartbeatSecs,
    onEvent: (raw) => {
      const event = fromStream(raw);
      if (event) deliver(event);
    },
    onStatus: (next) => setStatus(next),
    onFatal: fail,
    onExhausted: startPolling,
    // 204: we hold the final event already (a lastEventId from an earlier
    // page); one poll says which it was.
    onEnded: startPolling,
  });

  return {
    close() {
      if (!settled) setStatus({ state: "closed", transport });
      stop();
    },
    get transport() { return transport; },
    get state() { return state; },
    get lastEventId() { return lastSequence === null ? (options.lastEventId ?? null) : String(lastSequence); },
    settled: settledPromise,
  };
}

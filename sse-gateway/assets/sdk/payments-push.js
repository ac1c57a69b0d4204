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

/** @typedef {import("./payments-push").Transport} Transport */
/** @typedef {import("./payments-push").WatchOptions} WatchOptions */
/** @typedef {import("./payments-push").Watch} Watch */
/** @typedef {import("./payments-push").StreamOptions} StreamOptions */

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
 * One connection attempt of an EventStream: whether it has delivered a
 * byte (`heard`), when it last did, and how to stop it.
 */
class Attempt {
  heard = false;
  lastHeard = performance.now();
  stop = () => {};
}

/**
 * An event stream on the best transport that works, with the watchdog,
 * resume and fallback described at the top of this file. Callbacks never
 * run before the constructor has returned.
 */
class EventStream {
  #options;
  #transports;
  #types;
  #heartbeatMs;
  #lastEventId;
  #level = 0; // index into #transports
  #failures = 0; // of the transport at #level, in a row, without a byte
  #retryMs = RETRY_MIN_MS; // the server's `retry:`, or ours
  #eventSourceUrl = null; // reused until the gateway refuses it
  #closed = false;
  #current = null; // the Attempt in use
  #timer = 0;
  #watchdog;

  /** @param {StreamOptions} options */
  constructor(options) {
    this.#options = options;
    this.#transports = (options.transports ?? ["fetch", "eventsource"])
      .filter((t) => t === "fetch" || (t === "eventsource" && typeof EventSource === "function"));
    this.#types = [...new Set([...(options.types ?? []), "message", "heartbeat"])];
    this.#heartbeatMs = (options.heartbeatSecs ?? DEFAULT_HEARTBEAT_SECS) * 1000;
    this.#lastEventId = options.lastEventId ?? "";
    // One timer for the watchdog of whichever attempt is current.
    this.#watchdog = setInterval(() => this.#checkSilence(), 250);
    queueMicrotask(() => {
      if (this.#closed) return;
      if (this.#transport() !== null) this.#connect();
      else this.#finish(() => this.#options.onExhausted?.({ lastEventId: this.#lastEventId }));
    });
  }

  /** @returns {Transport | null} */
  get transport() { return this.#closed ? null : this.#transport(); }

  close() {
    this.#finish(() => {});
  }

  #transport() { return this.#transports[this.#level] ?? null; }

  #status(state, extra) {
    this.#options.onStatus?.({ state, transport: this.#transport(), ...extra });
  }

  // Closes for good, then tells the owner why with `then`.
  #finish(then) {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    clearTimeout(this.#timer);
    this.#current?.stop();
    this.#current = null;
    then();
  }

  #heard(attempt) {
    attempt.lastHeard = performance.now();
    if (attempt.heard) return;
    attempt.heard = true;
    this.#failures = 0;
    this.#status("live");
  }

  #dispatch(attempt, { type, data, id }) {
    if (attempt !== this.#current || this.#closed) return;
    this.#heard(attempt);
    if (type === "heartbeat") {
      try {
        const ms = JSON.parse(data).interval_ms;
        if (Number.isFinite(ms) && ms > 0) this.#heartbeatMs = ms;
      } catch { /* keep the interval we have */ }
      return;
    }
    const sequence = sequenceOf(id);
    const last = sequenceOf(this.#lastEventId);
    if (sequence !== null && last !== null && sequence <= last) return; // seen already
    if (id) this.#lastEventId = id;
    let parsed = data;
    try { parsed = JSON.parse(data); } catch { /* not JSON: handed over as text */ }
    this.#options.onEvent({ type, data: parsed, id: id || null, transport: this.#transport() });
  }

  // The attempt ended or failed. `spoke`: it delivered bytes first, so the
  // transport works and the stream is simply reopened.
  #ended(attempt, { spoke, fatal }) {
    if (attempt !== this.#current || this.#closed) return;
    this.#current = null;
    attempt.stop();
    if (fatal) return this.#finish(() => this.#options.onFatal?.(fatal));
    if (spoke) return this.#later(this.#retryMs, "reconnecting");
    this.#failures += 1;
    if (this.#failures < FAILURES_PER_TRANSPORT) return this.#later(this.#retryMs, "reconnecting");
    this.#dropLevel();
  }

  #dropLevel() {
    this.#level += 1;
    this.#failures = 0;
    this.#eventSourceUrl = null;
    if (this.#transport() !== null) return this.#connect();
    this.#finish(() => this.#options.onExhausted?.({ lastEventId: this.#lastEventId }));
  }

  #later(ms, state) {
    this.#status(state);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#connect(), jittered(ms));
  }

  #connect() {
    if (this.#closed) return;
    const attempt = new Attempt();
    this.#current = attempt;
    this.#status("connecting");
    if (this.#transport() === "fetch") this.#viaFetch(attempt);
    else this.#viaEventSource(attempt);
  }

  async #viaFetch(attempt) {
    const response = await this.#request(attempt);
    if (!response || attempt !== this.#current) return;
    const parser = createSseParser({
      onEvent: (event) => this.#dispatch(attempt, event),
      onRetry: (ms) => { this.#retryMs = Math.min(Math.max(ms, RETRY_MIN_MS), RETRY_MAX_MS); },
    });
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || attempt !== this.#current) break;
        this.#heard(attempt); // any byte, a retry: frame too, proves nothing buffers it
        parser.push(value);
      }
    } catch { /* a dropped connection, or stopped */ }
    this.#ended(attempt, { spoke: attempt.heard });
  }

  // The fetch transport's request: its response when it is an event
  // stream, else undefined (the attempt has ended, or the stream has).
  async #request(attempt) {
    const controller = new AbortController();
    attempt.stop = () => controller.abort();
    const headers = { Accept: "text/event-stream", ...this.#options.headers };
    if (this.#lastEventId) headers["Last-Event-ID"] = this.#lastEventId;
    let response;
    try {
      response = await fetch(this.#options.url, {
        headers,
        credentials: this.#options.credentials ?? "omit",
        cache: "no-store",
        signal: controller.signal,
      });
    } catch {
      return this.#ended(attempt, { spoke: false }); // unreachable, refused by CORS, or stopped
    }
    const fatal = fatalError(response.status);
    if (fatal) return this.#ended(attempt, { fatal });
    if (response.status === 204 && attempt === this.#current) {
      // The gateway says we have its last event already: nothing will come.
      return this.#finish(() => this.#options.onEnded?.({ lastEventId: this.#lastEventId }));
    }
    const type = response.headers.get("content-type") ?? "";
    if (response.ok && type.startsWith("text/event-stream") && response.body) return response;
    controller.abort();
    this.#ended(attempt, { spoke: false });
  }

  async #viaEventSource(attempt) {
    const fresh = this.#eventSourceUrl === null;
    if (fresh && !(await this.#fetchEventSourceUrl(attempt))) return;
    const target = new URL(this.#eventSourceUrl, location.href);
    if (this.#lastEventId) target.searchParams.set("last_event_id", this.#lastEventId);
    const source = new EventSource(target, { withCredentials: this.#options.credentials === "include" });
    let opened = false;
    attempt.stop = () => source.close();
    source.onopen = () => { opened = true; };
    source.onerror = () => {
      // We reconnect ourselves, so every reconnect gets the same rules.
      source.close();
      if (attempt !== this.#current) return;
      if (!opened && !attempt.heard && !fresh) {
        // A URL that worked before is refused: its token expired. Get a
        // new one, once; a fresh one refused is a failure.
        this.#eventSourceUrl = null;
        this.#current = null;
        return this.#later(0, "reconnecting");
      }
      if (!opened) this.#eventSourceUrl = null;
      // Opened and ended without an event: the gateway said "retry" (it is
      // starting, or full), which is no fault of the transport.
      this.#ended(attempt, { spoke: attempt.heard || opened });
    };
    for (const type of this.#types) {
      source.addEventListener(type, (message) =>
        this.#dispatch(attempt, { type, data: message.data, id: message.lastEventId }));
    }
  }

  // A URL for EventSource (a stream token's): true once it is set.
  async #fetchEventSourceUrl(attempt) {
    const controller = new AbortController();
    attempt.stop = () => controller.abort();
    const { eventSourceUrl, url } = this.#options;
    try {
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
      this.#eventSourceUrl = typeof eventSourceUrl === "function"
        ? await eventSourceUrl(signal)
        : eventSourceUrl ?? url;
    } catch (error) {
      this.#ended(attempt, { spoke: false, fatal: error?.fatal });
      return false;
    }
    if (attempt !== this.#current || this.#closed) return false;
    attempt.lastHeard = performance.now(); // the watchdog counts from the stream, not the token
    return true;
  }

  #checkSilence() {
    const attempt = this.#current;
    if (this.#closed || !attempt) return;
    const silent = performance.now() - attempt.lastHeard;
    if (!attempt.heard && silent > FIRST_BYTE_INTERVALS * this.#heartbeatMs) {
      // Not a byte in two heartbeats: a proxy buffers the stream (or the
      // gateway never answered). Next transport.
      this.#current = null;
      attempt.stop();
      this.#dropLevel();
    } else if (attempt.heard && silent > WATCHDOG_INTERVALS * this.#heartbeatMs) {
      // It spoke, then went quiet: frozen. Reopen; the proxy may send the
      // request elsewhere.
      this.#current = null;
      attempt.stop();
      this.#status("reconnecting");
      this.#connect();
    }
  }
}

/**
 * Opens an event stream on the best transport that works, with the
 * watchdog, resume and fallback described at the top of this file.
 * @param {StreamOptions} options
 * @returns {{ close(): void, readonly transport: Transport | null }}
 */
export function openEventStream(options) {
  return new EventStream(options);
}

/** The error that ends a watch for good, for an HTTP status, or null. */
function fatalError(status) {
  if (status === 401) return { code: "unauthorized", status, message: "The gateway knows no such order with this secret." };
  if (status === 404) return { code: "not_found", status, message: "The gateway knows no such order with this secret." };
  if (status === 400) return { code: "bad_request", status, message: "The gateway refused the request." };
  return null;
}

/**
 * One order watched until its final status: the streams of an EventStream,
 * then polls, and the one door (`#deliver`) every event comes through.
 */
class PaymentWatch {
  #options;
  #orderId;
  #clientSecret;
  #gateway;
  #orderUrl;
  #settled = false;
  #closed = false;
  #lastStatus = null;
  #lastSequence = null; // a BigInt once an event with one came
  #transport = null;
  #state = "connecting";
  #stream = null;
  #pollTimer = 0;
  #pollController = null;
  #pollDelay = POLL_MIN_MS;
  #resolve;
  /** @type {Watch["settled"]} */
  settled;

  /** @param {WatchOptions} options */
  constructor(options) {
    this.#options = options;
    this.#orderId = options.orderId;
    this.#clientSecret = options.clientSecret;
    this.#gateway = new URL(String(options.gateway ?? MODULE_GATEWAY).replace(/\/?$/, "/"), location.href);
    this.#orderUrl = new URL(`api/orders/${encodeURIComponent(this.#orderId)}`, this.#gateway).href;
    this.settled = new Promise((resolve) => { this.#resolve = resolve; });
    this.#stream = openEventStream({
      url: `${this.#orderUrl}/events`,
      headers: this.#authorization(),
      credentials: "omit",
      eventSourceUrl: (signal) => this.#tokenUrl(signal),
      types: ORDER_EVENT_TYPES,
      transports: this.#wanted().filter((t) => t !== "polling"),
      lastEventId: options.lastEventId,
      heartbeatSecs: options.heartbeatSecs,
      onEvent: (raw) => {
        const event = this.#fromStream(raw);
        if (event) this.#deliver(event);
      },
      onStatus: (next) => this.#setStatus(next),
      onFatal: (error) => this.#fail(error),
      onExhausted: () => this.#startPolling(),
      // 204: we hold the final event already (a lastEventId from an earlier
      // page); a poll says which it was.
      onEnded: () => this.#startPolling(),
    });
  }

  close() {
    if (!this.#settled) this.#setStatus({ state: "closed", transport: this.#transport });
    this.#stop();
  }

  get transport() { return this.#transport; }
  get state() { return this.#state; }
  get lastEventId() {
    return this.#lastSequence === null ? (this.#options.lastEventId ?? null) : String(this.#lastSequence);
  }

  #wanted() { return this.#options.transports ?? TRANSPORTS; }
  #authorization() { return { Authorization: `Bearer ${this.#clientSecret}` }; }

  #setStatus(next) {
    if (this.#closed && next.state !== "settled" && next.state !== "failed") return;
    this.#state = next.state;
    this.#transport = next.transport ?? null;
    this.#options.onStatus?.({
      state: this.#state, transport: this.#transport, ...(next.error ? { error: next.error } : {}),
    });
  }

  #stop() {
    this.#closed = true;
    this.#stream?.close();
    this.#stream = null;
    clearTimeout(this.#pollTimer);
    this.#pollController?.abort();
  }

  // The one door every event comes through, whatever carried it.
  #deliver(event) {
    if (this.#settled || this.#closed) return;
    if (event.sequence !== null) {
      const sequence = BigInt(event.sequence);
      if (this.#lastSequence !== null && sequence <= this.#lastSequence) return;
      this.#lastSequence = sequence;
    } else if (event.status === this.#lastStatus) {
      return; // a poll that saw nothing new
    }
    if (this.#lastStatus !== null && rank(event.status) < rank(this.#lastStatus)) return;
    this.#lastStatus = event.status;
    this.#options.onEvent?.(event);
    if (FINAL_STATUSES.includes(event.status)) this.#settle(event);
  }

  #settle(event) {
    this.#settled = true;
    this.#stop();
    this.#setStatus({ state: "settled", transport: event.transport });
    const { orderId, status, reason, occurredAt, sequence } = event;
    const result = Object.freeze({ orderId, status, reason, occurredAt, sequence });
    this.#options.onSettled?.(result);
    this.#resolve(result);
  }

  #fail(error) {
    if (this.#settled || this.#closed) return;
    this.#stop();
    this.#setStatus({ state: "failed", transport: this.#transport, error });
    this.#options.onError?.(error);
  }

  #fromStream({ type, data, id, transport }) {
    if (!ORDER_EVENT_TYPES.includes(type) || typeof data !== "object" || data === null) return null;
    if (data.order_id && data.order_id !== this.#orderId) return null;
    return {
      type, status: String(data.status ?? type).toLowerCase(), orderId: this.#orderId,
      sequence: id, reason: data.reason ?? "", occurredAt: data.occurred_at ?? "", transport, data,
    };
  }

  // Trades the client secret, in a POST body, for a stream token, and
  // answers the stream's URL with it.
  async #tokenUrl(signal) {
    const response = await fetch(`${this.#orderUrl}/stream-tokens`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ client_secret: this.#clientSecret }),
      credentials: "omit", cache: "no-store", signal,
    });
    if (!response.ok) {
      const error = new Error(`stream token refused: HTTP ${response.status}`);
      error.fatal = fatalError(response.status) ?? undefined;
      throw error;
    }
    return new URL((await response.json()).events_url, this.#gateway).href;
  }

  // The lowest level: GET /api/orders/{id}, again and again, with backoff.
  #startPolling() {
    if (this.#closed) return;
    this.#stream = null;
    if (!this.#wanted().includes("polling")) {
      return this.#fail({ code: "unavailable", message: "No transport could reach the gateway." });
    }
    this.#setStatus({ state: "connecting", transport: "polling" });
    this.#poll();
  }

  async #poll() {
    if (this.#closed) return;
    const order = await this.#fetchOrder();
    if (this.#closed) return;
    if (order) {
      const before = this.#lastStatus;
      this.#setStatus({ state: "live", transport: "polling" });
      this.#deliver({
        type: order.status, status: order.status, orderId: this.#orderId, sequence: null,
        reason: order.reason ?? "", occurredAt: order.updated_at ?? "", transport: "polling", data: order,
      });
      // Quick again after a change, slower while nothing happens.
      this.#pollDelay = this.#lastStatus !== before ? POLL_MIN_MS : Math.min(this.#pollDelay * 2, POLL_MAX_MS);
    } else {
      this.#setStatus({ state: "reconnecting", transport: "polling" });
      this.#pollDelay = Math.min(this.#pollDelay * 2, POLL_MAX_MS);
    }
    if (!this.#closed) this.#pollTimer = setTimeout(() => this.#poll(), jittered(this.#pollDelay));
  }

  // The order, or null when it could not be read this time.
  async #fetchOrder() {
    this.#pollController = new AbortController();
    const signal = AbortSignal.any([this.#pollController.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
    try {
      const response = await fetch(this.#orderUrl, {
        headers: { Accept: "application/json", ...this.#authorization() },
        credentials: "omit", cache: "no-store", signal,
      });
      const fatal = fatalError(response.status);
      if (fatal) {
        this.#fail(fatal);
        return null;
      }
      const order = response.ok ? await response.json() : null;
      return typeof order?.status === "string" ? order : null;
    } catch {
      return null; // unreachable or slow: the next poll may do better
    }
  }
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
  return new PaymentWatch(options);
}

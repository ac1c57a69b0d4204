// A live event stream that does not trust a silent connection.
//
// EventSource reconnects when a connection fails, but not when it goes
// quiet: a frozen gateway, or a proxy still holding a dead upstream, leaves
// it waiting forever while the payment's result sits elsewhere. The gateway
// sends a `heartbeat` event when a stream opens (its data announces the
// interval) and whenever the stream has been quiet that long. After
// WATCHDOG_INTERVALS intervals without any event, the stream is closed and
// opened again, resuming with ?last_event_id= (a new EventSource cannot set
// the Last-Event-ID header), so a proxy can send it to another gateway.
//
// EventSource cannot send headers either, so an order's stream URL carries a
// short-lived stream token, never the order's client secret: `url` may be a
// function that gets a URL with a fresh token (see streamTokenUrl). The URL
// is reused until the gateway refuses it (EventSource gives up: the token
// expired), so a reconnect is one request, as EventSource's own, and a
// round-robin proxy offers it the next gateway rather than the same one.
// A refused stream is opened again with a fresh URL, up to MAX_REFUSALS
// times in a row before the page is told.
"use strict";

const MAX_REFUSALS = 3;
const REFUSED_RETRY_MS = 1000;

/**
 * A function for openLiveStream's `url` that trades the order's client
 * secret, in a POST body, for a stream token, and answers the stream's URL
 * with the token in it. It throws an error with `refused: true` when the
 * gateway answers 4xx, and a plain one when it cannot be reached in time
 * (`signal`): a proxy does not retry a POST on another gateway, so a frozen
 * one would hold the request forever.
 */
function streamTokenUrl(streamTokensUrl, clientSecret) {
  return async (signal) => {
    const response = await fetch(streamTokensUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ client_secret: clientSecret }),
      signal,
    });
    if (!response.ok) {
      const error = new Error(`stream token refused: HTTP ${response.status}`);
      error.refused = response.status < 500;
      throw error;
    }
    return (await response.json()).events_url;
  };
}

const WATCHDOG_INTERVALS = 2.5;
// Until the stream announces its own: the gateway's default.
const DEFAULT_HEARTBEAT_MS = 15000;

/**
 * Opens `url` (a string, or an async function answering one) and calls `onEvent(type, message)` for each event of `types`.
 * `onOpen()` when a connection opens, `onError(eventSource)` as EventSource
 * reports errors (its readyState says whether it will retry by itself), and
 * `onStall()` when the watchdog replaces a silent connection.
 * Returns { close() }.
 */
function openLiveStream(url, { types, onEvent, onOpen, onError, onStall }) {
  let source = null;
  let lastEventId = "";
  let heartbeatMs = DEFAULT_HEARTBEAT_MS;
  let lastHeard = performance.now();
  let closed = false;
  let refusals = 0;
  let base = null; // the URL in use, while the gateway accepts it
  // performance.now(): a wall clock set back would silence the watchdog.
  const heard = () => { lastHeard = performance.now(); };
  // Tells the page the stream is given up, as EventSource would.
  const giveUp = (es) => onError?.(es ?? { readyState: EventSource.CLOSED });

  // A refusal (of the stream, or of its token) is tried again with a fresh
  // URL, a few times in a row.
  function retryRefused(es) {
    refusals += 1;
    if (refusals > MAX_REFUSALS || typeof url !== "function") return giveUp(es);
    base = null;
    onStall?.();
    setTimeout(connect, REFUSED_RETRY_MS);
  }

  async function connect() {
    if (closed) return;
    try {
      // A token request gets as long as a heartbeat interval (at least 2 s).
      const signal = AbortSignal.timeout(Math.max(heartbeatMs, 2000));
      if (base === null) base = typeof url === "function" ? await url(signal) : url;
    } catch (error) {
      if (closed) return;
      if (error?.refused) return retryRefused(null);
      // Unreachable or too slow: try again, as EventSource itself would.
      onStall?.();
      setTimeout(connect, REFUSED_RETRY_MS);
      return;
    }
    if (closed) return;
    const target = new URL(base, location.href);
    if (lastEventId) target.searchParams.set("last_event_id", lastEventId);
    const es = new EventSource(target);
    source = es;
    heard();
    es.onopen = () => {
      if (source !== es) return;
      refusals = 0;
      heard();
      onOpen?.();
    };
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CLOSED && typeof url === "function") {
        es.close();
        source = null;
        retryRefused(es);
      } else {
        onError?.(es);
      }
    };
    es.addEventListener("heartbeat", (message) => {
      if (source !== es) return;
      heard();
      try {
        const ms = JSON.parse(message.data).interval_ms;
        if (Number.isFinite(ms) && ms > 0) heartbeatMs = ms;
      } catch { /* keep the interval we have */ }
    });
    for (const type of types) {
      es.addEventListener(type, (message) => {
        if (source !== es) return; // a replaced connection's last words
        heard();
        if (message.lastEventId) lastEventId = message.lastEventId;
        onEvent(type, message);
      });
    }
  }

  const watchdog = setInterval(() => {
    // CLOSED: the server refused the stream; the page decides what next.
    if (closed || !source || source.readyState === EventSource.CLOSED) return;
    if (performance.now() - lastHeard > WATCHDOG_INTERVALS * heartbeatMs) {
      source.close();
      onStall?.();
      connect();
    }
  }, 250);

  connect();
  return {
    close() {
      closed = true;
      clearInterval(watchdog);
      source?.close();
      source = null;
    },
  };
}

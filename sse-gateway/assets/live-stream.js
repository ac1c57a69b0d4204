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
"use strict";

const WATCHDOG_INTERVALS = 2.5;
// Until the stream announces its own: the gateway's default.
const DEFAULT_HEARTBEAT_MS = 15000;

/**
 * Opens `url` and calls `onEvent(type, message)` for each event of `types`.
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
  // performance.now(): a wall clock set back would silence the watchdog.
  const heard = () => { lastHeard = performance.now(); };

  function connect() {
    const target = new URL(url, location.href);
    if (lastEventId) target.searchParams.set("last_event_id", lastEventId);
    const es = new EventSource(target);
    source = es;
    heard();
    es.onopen = () => {
      if (source !== es) return;
      heard();
      onOpen?.();
    };
    es.onerror = () => {
      if (source === es) onError?.(es);
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

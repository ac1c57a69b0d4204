// Types of payments-push.js, the browser client of a payments-push gateway.
// Served next to it: /sdk/payments-push.d.ts. Hand-written; keep in step.

/** A status after which nothing more happens to an order. */
export type FinalStatus = "succeeded" | "failed" | "canceled" | "expired";
/** An order's status. */
export type PaymentStatus = "created" | "processing" | FinalStatus;
/** How events reach the page, best first. */
export type Transport = "fetch" | "eventsource" | "polling";

/**
 * Where a watch stands:
 * - `connecting`: a connection (or a poll) is on its way;
 * - `live`: the transport delivers (a stream spoke, or a poll answered);
 * - `reconnecting`: it is being reopened, resuming after the last event;
 * - `settled`: the final status arrived (onSettled has it);
 * - `failed`: the gateway refused the watch for good (onError has why);
 * - `closed`: the page closed it.
 */
export type WatchState = "connecting" | "live" | "reconnecting" | "settled" | "failed" | "closed";

export interface WatchStatus {
  state: WatchState;
  /** The transport in use; null before the first and after close. */
  transport: Transport | null;
  /** With `failed`. */
  error?: WatchError;
}

export interface WatchError {
  /**
   * `not_found` (404) or `unauthorized` (401): the gateway knows no such
   * order with this client secret (it does not say which is wrong, so
   * neither can be probed); `bad_request`: it refused the request (400);
   * `unavailable`: no transport the page allowed could reach the gateway.
   * A refusal is final: the watch does not try another transport.
   */
  code: "unauthorized" | "not_found" | "bad_request" | "unavailable";
  status?: number;
  message: string;
}

/** One change of an order, as the page gets it. */
export interface PaymentEvent {
  /** The event's name: the order's status after it. */
  type: PaymentStatus;
  status: PaymentStatus;
  orderId: string;
  /**
   * The event's sequence in the gateway's log (a decimal string: it may
   * exceed 2^53), the resume point. null when a poll saw the status: polls
   * see states, not events, and may skip one (created, then succeeded).
   */
  sequence: string | null;
  /** Why (a decline reason); may be empty. */
  reason: string;
  /** RFC 3339; may be empty. */
  occurredAt: string;
  transport: Transport;
  /** The JSON the gateway sent: the event's data, or the polled order. */
  data: Record<string, unknown>;
}

/** An order's final status. */
export interface PaymentResult {
  orderId: string;
  status: FinalStatus;
  reason: string;
  occurredAt: string;
  sequence: string | null;
}

export interface WatchOptions {
  /** The order's id, as the merchant's server got it from CreateOrder. */
  orderId: string;
  /**
   * The order's client secret, from the same answer. Sent only in an
   * Authorization header or a POST body, never in a URL.
   */
  clientSecret: string;
  /**
   * The gateway's base URL, e.g. "https://push.example/". Default: where
   * this module was loaded from.
   */
  gateway?: string | URL;
  /** Resume after this event (a PaymentEvent's sequence, kept by the page). */
  lastEventId?: string;
  /**
   * The gateway's HEARTBEAT_SECS (default 15), until a stream announces its
   * own. A stream silent for two of them from its start is taken as
   * buffered, and the watch drops to the next transport.
   */
  heartbeatSecs?: number;
  /** Which transports to try, in this order. Default: all three. */
  transports?: readonly Transport[];
  /** Each event once, in order. */
  onEvent?: (event: PaymentEvent) => void;
  /** The final status, exactly once. The watch is closed by then. */
  onSettled?: (result: PaymentResult) => void;
  /** Every change of state or transport. */
  onStatus?: (status: WatchStatus) => void;
  /** The watch ended without a result (wrong secret, unknown order). */
  onError?: (error: WatchError) => void;
}

export interface Watch {
  /** Stops watching: closes the connection, cancels polls. */
  close(): void;
  readonly transport: Transport | null;
  readonly state: WatchState;
  /** The last event's sequence, to resume a later watch after it. */
  readonly lastEventId: string | null;
  /** Resolves with the final status (never rejects; may never resolve if closed first). */
  readonly settled: Promise<PaymentResult>;
}

/** Watches one order until its final status. Throws TypeError without orderId or clientSecret. */
export function watchPayment(options: WatchOptions): Watch;

/** An event of openEventStream, de-duplicated by id. */
export interface StreamEvent {
  type: string;
  /** Parsed JSON, or the text if it is not JSON. */
  data: unknown;
  id: string | null;
  transport: Transport;
}

export interface StreamOptions {
  /** The event stream's URL. */
  url: string;
  /** Headers for the fetch transport (e.g. Authorization). */
  headers?: Record<string, string>;
  /** "same-origin" sends a same-origin page's cookies (the dashboard's session). Default "omit". */
  credentials?: RequestCredentials;
  /** The URL EventSource opens, or a function answering one (a token URL). Default: `url`. */
  eventSourceUrl?: string | ((signal: AbortSignal) => Promise<string>);
  /** Event names to listen for (EventSource needs them; "message" is added). */
  types?: readonly string[];
  /** Default ["fetch", "eventsource"]. */
  transports?: readonly Exclude<Transport, "polling">[];
  lastEventId?: string;
  heartbeatSecs?: number;
  onEvent: (event: StreamEvent) => void;
  onStatus?: (status: WatchStatus) => void;
  /** Refused for good (401, 404, 400): the stream is closed. */
  onFatal?: (error: WatchError) => void;
  /** Every transport failed: the stream is closed. */
  onExhausted?: (at: { lastEventId: string }) => void;
  /** The server answered 204: the client has its last event already. */
  onEnded?: (at: { lastEventId: string }) => void;
}

/** An event stream on the best transport that works, with watchdog, resume and fallback. */
export function openEventStream(options: StreamOptions): { close(): void; readonly transport: Transport | null };

/** An incremental text/event-stream parser. */
export function createSseParser(handlers: {
  onEvent: (event: { type: string; data: string; id: string }) => void;
  onRetry?: (ms: number) => void;
}): { push(bytes: Uint8Array): void };

export const FINAL_STATUSES: readonly FinalStatus[];
export const ORDER_EVENT_TYPES: readonly PaymentStatus[];
export const TRANSPORTS: readonly Transport[];

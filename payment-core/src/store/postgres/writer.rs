//! The writer: one task per store commits queued commands in batches (see
//! [`crate::store::batch`]), one transaction per batch, built from a fixed
//! number of set-based statements whatever the batch size:
//!
//! 1. lock the rows of every order a status change of the batch names
//!    (`FOR UPDATE`, in the order of `ORDER BY order_id`) and read them;
//! 2. read the orders that already hold the batch's idempotency keys;
//! 3. decide every command in the batch's order with the state machine,
//!    against those locked rows (in memory, no I/O);
//! 4. insert the new orders, in idempotency-key order;
//! 5. write the final state of every changed order;
//! 6. as the last statement: take `n` sequences from `log_head` at once,
//!    append the `n` events with them and queue one `NOTIFY`;
//! 7. COMMIT, then answer the callers.
//!
//! Every batch takes its locks in the same order (order rows by id, then
//! idempotency keys by key, then `log_head`), so batches of two replicas
//! wait for each other but do not deadlock; should PostgreSQL still report
//! a deadlock or serialization failure, the batch is retried a few times
//! from the start.
//!
//! The `log_head` row lock is taken last and held until COMMIT: the next
//! batch, on any replica, gets its sequences only after this one committed,
//! so sequences are dense and sequence order is commit order. Batching is
//! what makes that affordable: the serialised tail (one statement and the
//! commit's WAL flush) is paid once per batch, not once per event.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use deadpool_postgres::{Object, Pool, Transaction};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;

use super::{client, db, notification};
use crate::{
    domain::{
        ClientSecret, Decision, IdempotencyKey, MerchantId, NewOrder, Order, OrderId, PaymentEvent,
        TraceParent,
    },
    store::{
        Applied, Created, StoreError,
        batch::{MAX_BATCH, Outcome, WriteCommand, WriteMetrics, answer, fail, take_queued},
        columns::{ORDER_COLUMNS, order_from_row, order_id_from_row, sequence_from_row},
    },
};

/// Attempts per batch when PostgreSQL aborts it as a deadlock victim or a
/// serialization failure: both leave nothing written, and a second attempt
/// meets the other transaction committed. (With the lock order above this
/// should not happen; the retry is a backstop.)
const ATTEMPTS: u32 = 3;
/// The most one attempt may take. The server bounds each statement
/// (`statement_timeout`), but not a connection that died without closing:
/// without this, the writer, and every write queued behind it, would wait
/// for TCP to notice.
const BATCH_TIMEOUT: Duration = Duration::from_secs(15);

/// Step 4, after `INSERT INTO orders ({ORDER_COLUMNS})`: each array is one
/// column, in [`ORDER_COLUMNS`] order. A key taken meanwhile by another
/// replica's committed order is skipped (`ON CONFLICT DO NOTHING` waits for
/// that order's transaction first); the rows returned are those inserted.
const INSERT_ORDERS_FROM_ARRAYS: &str = "SELECT * FROM unnest($1::text[], $2::bigint[], \
     $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], \
     $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[]) \
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING order_id";
/// Step 5: one row per changed order, in its final state.
const UPDATE_ORDERS: &str = "UPDATE orders o SET status = u.status, reason = u.reason, \
     provider_reference = u.provider_reference, updated_at = u.updated_at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
     AS u(order_id, status, reason, provider_reference, updated_at) \
     WHERE o.order_id = u.order_id";
/// Step 6, one statement so that `log_head` is locked for one round trip
/// plus the commit: take `$6` sequences, append the `$6` events (one per
/// array position, in that order) with them, and queue one notification
/// (sent by the server at commit) on the log's channel `$8`: the last
/// sequence, then `$7`, the events as [`notification::events_json`] encodes
/// them. The events are left out once the server's notification queue is a
/// tenth full: a listener that stopped reading (a frozen replica) keeps the
/// queue from being trimmed, and when it is full every commit fails; without
/// events a notification is a few bytes, which buys days instead of hours.
/// Returns the last sequence taken.
const APPEND_EVENTS: &str = "WITH head AS ( \
         UPDATE log_head SET sequence = sequence + $6 RETURNING sequence \
     ), appended AS ( \
         INSERT INTO events (sequence, order_id, status, reason, provider_reference, occurred_at) \
         SELECT head.sequence - $6 + e.position, e.order_id, e.status, e.reason, \
                e.provider_reference, e.occurred_at \
         FROM head, unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
              WITH ORDINALITY AS e(order_id, status, reason, provider_reference, occurred_at, position) \
         RETURNING sequence \
     ) \
     SELECT max(sequence) AS sequence, \
            pg_notify($8::text, max(sequence)::text || ' ' || \
                CASE WHEN pg_notification_queue_usage() < 0.1 THEN $7::text ELSE '' END) \
     FROM appended";

/// Runs until every sender of `commands` is dropped (the store is
/// dropped); notifies on `channel`, the log's private channel.
pub(super) async fn run(
    pool: Pool,
    channel: Arc<str>,
    mut commands: mpsc::Receiver<WriteCommand>,
    metrics: WriteMetrics,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = commands.recv().await {
        let started = Instant::now();
        batch.push(first);
        take_queued(&mut commands, &mut batch);
        commit_with_retries(&pool, &channel, &mut batch, &metrics, started).await;
    }
    tracing::debug!("postgres writer stopped");
}

/// Why a batch attempt did not commit.
enum Failure {
    /// The server aborted it for a conflict with another transaction;
    /// nothing was written and a new attempt may succeed.
    Retryable(tokio_postgres::Error),
    Failed(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        let retryable = error.code().is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        });
        if retryable {
            Failure::Retryable(error)
        } else {
            Failure::Failed(db(error))
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Failed(error)
    }
}

async fn commit_with_retries(
    pool: &Pool,
    channel: &str,
    batch: &mut Vec<WriteCommand>,
    metrics: &WriteMetrics,
    started: Instant,
) {
    let mut attempt = 1;
    loop {
        let attempted = match client(pool).await {
            Err(error) => Err(Failure::Failed(error)),
            Ok(mut client) => {
                match tokio::time::timeout(BATCH_TIMEOUT, commit(&mut client, channel, batch)).await
                {
                    Ok(result) => result,
                    Err(_) => {
                        // The connection may be dead without an error to
                        // show for it: close it rather than pool it again.
                        drop(Object::take(client));
                        Err(Failure::Failed(StoreError::Unavailable(
                            "the database did not finish the write in time; its outcome is unknown"
                                .into(),
                        )))
                    }
                }
            }
        };
        match attempted {
            Ok(outcomes) => return answer(batch, outcomes, metrics, started),
            Err(Failure::Retryable(error)) if attempt < ATTEMPTS => {
                tracing::warn!(%error, attempt, batch = batch.len(), "write batch aborted by the server; retrying");
                attempt += 1;
            }
            Err(Failure::Retryable(error)) => {
                let error = StoreError::Unavailable(format!(
                    "aborted by the database {ATTEMPTS} times: {}",
                    db(error)
                ));
                return fail(batch, &error, metrics);
            }
            Err(Failure::Failed(error)) => return fail(batch, &error, metrics),
        }
    }
}

/// What a command will come to, once the batch's writes are done.
// Plans live for one batch, one per command in one Vec: boxing `Decided`
// would allocate for each refused command to save a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum Plan {
    /// Decided without them (a refusal, an unchanged order, a key that an
    /// order already committed holds).
    Decided(Outcome),
    /// A status change; its event is `events[i]`.
    Moved(usize),
    /// A create whose order this batch inserts, unless another replica's
    /// order took the key first; its event is `events[i]`.
    Inserted(usize),
    /// A create answered by whichever order ends up holding its key:
    /// another create of this batch with the same key comes first.
    SameKeyAs(IdempotencyKey),
}

/// One attempt at committing `batch`: the steps of the module
/// documentation.
async fn commit(
    client: &mut Object,
    channel: &str,
    batch: &[WriteCommand],
) -> Result<Vec<Outcome>, Failure> {
    // Returning early drops the transaction, which rolls it back.
    let tx = client.transaction().await?;

    let mut orders = lock_orders(&tx, batch).await?;
    let mut by_key = orders_by_key(&tx, batch.iter().filter_map(create_key)).await?;

    // Step 3: in memory, in the batch's order, so that a later change sees
    // what an earlier one did to the same order. (A change of an order
    // created in this same batch cannot occur: its id is known only once
    // the create is answered, after commit.)
    let mut events: Vec<Order> = Vec::new();
    let mut changed: HashSet<OrderId> = HashSet::new();
    // Each with the secret the orders table keeps and `Order` does not.
    let mut new_orders: Vec<(Order, &ClientSecret)> = Vec::new();
    let mut plans = Vec::with_capacity(batch.len());
    for command in batch {
        let plan = match command {
            WriteCommand::Create { new, .. } => match &new.idempotency_key {
                Some(key) if by_key.contains_key(key.as_str()) => {
                    if new_orders
                        .iter()
                        .any(|(o, _)| o.idempotency_key.as_ref() == Some(key))
                    {
                        Plan::SameKeyAs(key.clone())
                    } else {
                        Plan::Decided(Outcome::Created(same_request(&by_key[key.as_str()], new)))
                    }
                }
                _ => {
                    let order = new.to_order();
                    if let Some(key) = &order.idempotency_key {
                        by_key.insert(key.as_str().to_owned(), order.clone());
                    }
                    new_orders.push((order.clone(), &new.client_secret));
                    events.push(order);
                    Plan::Inserted(events.len() - 1)
                }
            },
            WriteCommand::Apply { id, change, .. } => match orders.get_mut(id) {
                None => Plan::Decided(Outcome::Applied(Err(StoreError::NotFound))),
                Some(order) => match order.change(change) {
                    Err(conflict) => Plan::Decided(Outcome::Applied(Err(conflict.into()))),
                    Ok(Decision::AlreadyThere) => {
                        Plan::Decided(Outcome::Applied(Ok(Applied::Unchanged(order.clone()))))
                    }
                    Ok(Decision::Move) => {
                        changed.insert(*id);
                        events.push(order.clone());
                        Plan::Moved(events.len() - 1)
                    }
                },
            },
        };
        plans.push(plan);
    }

    // Step 4. Keys lost to another replica: that replica's order answers
    // every create of this batch with the key, and this batch's planned
    // order (and its event) is dropped.
    let lost = insert_orders(&tx, &mut new_orders).await?;
    let lost_keys: HashSet<&str> = lost.iter().filter_map(order_key).collect();
    if lost_keys.len() != lost.len() {
        // Only a key can conflict: order ids are fresh.
        return Err(StoreError::Database("an order without a key was not inserted".into()).into());
    }
    let winners = orders_by_key(&tx, lost_keys.iter().copied()).await?;
    for key in &lost_keys {
        let winner = winners.get(*key).ok_or_else(|| {
            StoreError::Database("order insert conflicted without a conflicting order".into())
        })?;
        by_key.insert((*key).to_owned(), winner.clone());
    }
    let lost_ids: HashSet<OrderId> = lost.iter().map(|order| order.id).collect();
    let kept = |order: &Order| !lost_ids.contains(&order.id);

    update_orders(&tx, changed.iter().map(|id| &orders[id])).await?;

    // Step 6. Dropped creates leave holes in `events`; `sequences[i]` is
    // the sequence of `events[i]` among those appended.
    let appended: Vec<&Order> = events.iter().filter(|order| kept(order)).collect();
    let last = append_events(&tx, channel, &appended).await?;
    let mut next = last + 1 - appended.len() as u64;
    let sequences: Vec<Option<u64>> = events
        .iter()
        .map(|order| {
            kept(order).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();

    tx.commit().await?;

    let event_at = |i: usize| PaymentEvent {
        sequence: sequences[i].expect("only kept events are looked up"),
        order: events[i].clone(),
    };
    let outcomes = batch
        .iter()
        .zip(plans)
        .map(|(command, plan)| match (command, plan) {
            (_, Plan::Decided(outcome)) => outcome,
            (_, Plan::Moved(i)) => Outcome::Applied(Ok(Applied::Moved(event_at(i)))),
            (WriteCommand::Create { new, .. }, Plan::Inserted(i)) => match &new.idempotency_key {
                Some(key) if lost_keys.contains(key.as_str()) => {
                    Outcome::Created(same_request(&by_key[key.as_str()], new))
                }
                _ => Outcome::Created(Ok(Created::New(event_at(i)))),
            },
            (WriteCommand::Create { new, .. }, Plan::SameKeyAs(key)) => {
                Outcome::Created(same_request(&by_key[key.as_str()], new))
            }
            (WriteCommand::Apply { .. }, Plan::Inserted(_) | Plan::SameKeyAs(_)) => {
                unreachable!("only creates insert orders")
            }
        })
        .collect();
    Ok(outcomes)
}

fn order_key(order: &Order) -> Option<&str> {
    order.idempotency_key.as_ref().map(IdempotencyKey::as_str)
}

fn create_key(command: &WriteCommand) -> Option<&str> {
    match command {
        WriteCommand::Create { new, .. } => {
            new.idempotency_key.as_ref().map(IdempotencyKey::as_str)
        }
        WriteCommand::Apply { .. } => None,
    }
}

/// The answer to a create whose idempotency key is held by `order`.
fn same_request(order: &Order, new: &NewOrder) -> Result<Created, StoreError> {
    if order.same_request_as(new) {
        Ok(Created::Existing(order.clone()))
    } else {
        Err(StoreError::IdempotencyKeyReused)
    }
}

/// Step 1. The row locks make a change racing another replica's (a report
/// racing expiry) decide after that one committed, against its result.
async fn lock_orders(
    tx: &Transaction<'_>,
    batch: &[WriteCommand],
) -> Result<HashMap<OrderId, Order>, Failure> {
    let mut ids: Vec<String> = batch
        .iter()
        .filter_map(|command| match command {
            WriteCommand::Apply { id, .. } => Some(id.to_string()),
            WriteCommand::Create { .. } => None,
        })
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Only to drop repeats: the lock order is the statement's ORDER BY.
    ids.sort_unstable();
    ids.dedup();
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ANY($1::text[]) \
             ORDER BY order_id FOR UPDATE"
        ))
        .await?;
    let mut orders = HashMap::with_capacity(ids.len());
    for row in tx.query(&statement, &[&ids]).await? {
        let order = order_from_row(&row)?;
        orders.insert(order.id, order);
    }
    Ok(orders)
}

/// Committed orders holding any of `keys`, by key.
async fn orders_by_key<'k>(
    tx: &Transaction<'_>,
    keys: impl Iterator<Item = &'k str>,
) -> Result<HashMap<String, Order>, Failure> {
    let mut keys: Vec<&str> = keys.collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    keys.sort_unstable();
    keys.dedup();
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = ANY($1::text[])"
        ))
        .await?;
    let mut orders = HashMap::with_capacity(keys.len());
    for row in tx.query(&statement, &[&keys]).await? {
        let order = order_from_row(&row)?;
        if let Some(key) = &order.idempotency_key {
            orders.insert(key.as_str().to_owned(), order);
        }
    }
    Ok(orders)
}

/// Step 4. Inserts `new_orders` (sorted by key first, so two replicas'
/// batches meet their keys in the same order) and returns those not
/// inserted because another replica's order took their key first.
async fn insert_orders(
    tx: &Transaction<'_>,
    new_orders: &mut [(Order, &ClientSecret)],
) -> Result<Vec<Order>, Failure> {
    if new_orders.is_empty() {
        return Ok(Vec::new());
    }
    new_orders.sort_by(|(a, _), (b, _)| order_key(a).cmp(&order_key(b)));
    let text = |f: fn(&Order) -> &str| new_orders.iter().map(|(o, _)| f(o)).collect::<Vec<_>>();
    let number = |f: fn(&Order) -> i64| new_orders.iter().map(|(o, _)| f(o)).collect::<Vec<_>>();
    let ids: Vec<String> = new_orders.iter().map(|(o, _)| o.id.to_string()).collect();
    let secrets: Vec<&str> = new_orders.iter().map(|(_, s)| s.as_str()).collect();
    let keys: Vec<Option<&str>> = new_orders.iter().map(|(o, _)| order_key(o)).collect();
    let merchants: Vec<Option<&str>> = new_orders
        .iter()
        .map(|(o, _)| o.merchant.as_ref().map(MerchantId::as_str))
        .collect();
    let trace_parents: Vec<Option<&str>> = new_orders
        .iter()
        .map(|(o, _)| o.trace_parent.as_ref().map(TraceParent::as_str))
        .collect();
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) {INSERT_ORDERS_FROM_ARRAYS}"
        ))
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &ids,
                &number(|o| o.amount.minor()),
                &text(|o| o.currency.as_str()),
                &text(|o| o.description.as_str()),
                &secrets,
                &keys,
                &text(|o| o.status.as_str()),
                &number(|o| o.created_at.0),
                &number(|o| o.updated_at.0),
                &number(|o| o.expires_at.0),
                &text(|o| o.reason.as_str()),
                &text(|o| o.provider_reference.as_str()),
                &merchants,
                &trace_parents,
            ],
        )
        .await?;
    let inserted: HashSet<OrderId> = rows
        .iter()
        .map(order_id_from_row)
        .collect::<Result<_, _>>()?;
    Ok(new_orders
        .iter()
        .filter(|(order, _)| !inserted.contains(&order.id))
        .map(|(order, _)| order.clone())
        .collect())
}

/// Step 5.
async fn update_orders<'o>(
    tx: &Transaction<'_>,
    changed: impl Iterator<Item = &'o Order>,
) -> Result<(), Failure> {
    let changed: Vec<&Order> = changed.collect();
    if changed.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Order) -> &str| changed.iter().map(|o| f(o)).collect::<Vec<_>>();
    let ids: Vec<String> = changed.iter().map(|o| o.id.to_string()).collect();
    let updated_at: Vec<i64> = changed.iter().map(|o| o.updated_at.0).collect();
    let statement = tx.prepare_cached(UPDATE_ORDERS).await?;
    tx.execute(
        &statement,
        &[
            &ids,
            &text(|o| o.status.as_str()),
            &text(|o| o.reason.as_str()),
            &text(|o| o.provider_reference.as_str()),
            &updated_at,
        ],
    )
    .await?;
    Ok(())
}

/// Step 6: appends one event per order snapshot in `events`, in that
/// order; returns the last sequence taken (the head, when there is nothing
/// to append).
async fn append_events(
    tx: &Transaction<'_>,
    channel: &str,
    events: &[&Order],
) -> Result<u64, Failure> {
    if events.is_empty() {
        return Ok(0);
    }
    let text = |f: fn(&Order) -> &str| events.iter().map(|o| f(o)).collect::<Vec<_>>();
    let ids: Vec<String> = events.iter().map(|o| o.id.to_string()).collect();
    let occurred_at: Vec<i64> = events.iter().map(|o| o.updated_at.0).collect();
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let statement = tx.prepare_cached(APPEND_EVENTS).await?;
    let row = tx
        .query_one(
            &statement,
            &[
                &ids,
                &text(|o| o.status.as_str()),
                &text(|o| o.reason.as_str()),
                &text(|o| o.provider_reference.as_str()),
                &occurred_at,
                &count,
                &notification::events_json(events),
                &channel,
            ],
        )
        .await?;
    Ok(sequence_from_row(&row)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_append_statement_notifies_on_the_channel_it_is_given() {
        assert!(APPEND_EVENTS.contains("pg_notify($8::text,"));
    }
}

//! Step 1: the orders to watch. For nchan, channel names (nothing to
//! create); for the gateway, orders created through its API (as a shop
//! would) or straight over gRPC, `--create-concurrency` at a time.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, ensure};
use payments_proto::payments::v1::{self as pb, payment_service_client::PaymentServiceClient};
use service_kit::core_client::{ApiKey, KeyedChannel};
use tonic::transport::Channel;

use super::{
    args::{CreateVia, RunArgs},
    progress,
};
use crate::{clock::mono_ns, http::KeepAlive, target::Target};

pub(super) struct Order {
    /// Gateway: the order id; nchan: the channel name.
    pub(super) id: String,
    pub(super) sub_path: String,
    /// The stream's `Authorization` header, if it needs one.
    pub(super) authorization: Option<String>,
}

/// The orders to watch: nchan channel names, or orders created on the
/// gateway.
pub(super) async fn create_orders(
    args: &RunArgs,
    addr: SocketAddr,
    count: usize,
) -> anyhow::Result<Vec<Order>> {
    let run_id = format!("{:x}", mono_ns() & 0xffff_ffff);
    if args.target == Target::Nchan {
        return Ok(nchan_channels(&run_id, count));
    }
    let slots = Arc::new(Slots {
        orders: (0..count).map(|_| Mutex::new(None)).collect(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.create_concurrency.clamp(1, 512) {
        let (via, core_url, api_key, slots) = (
            args.create_via,
            args.core_url.clone(),
            args.core_api_key.clone(),
            Arc::clone(&slots),
        );
        tasks.spawn(async move {
            let creator = OrderCreator::connect(via, core_url, &api_key, addr).await?;
            fill_slots(creator, &slots).await
        });
    }
    let ticker = tokio::spawn(creation_progress(Arc::clone(&slots)));
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined? {
            outcome = Err(error);
            tasks.abort_all();
        }
    }
    ticker.abort();
    outcome?;
    slots.take_all()
}

/// Prints how many orders are created every second, until aborted.
async fn creation_progress(slots: Arc<Slots>) {
    let count = slots.orders.len();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress(&format!(
            "created {}/{count} orders",
            slots.done.load(Relaxed)
        ));
    }
}

fn nchan_channels(run_id: &str, count: usize) -> Vec<Order> {
    (0..count)
        .map(|o| {
            let id = format!("lg{run_id}-{o}");
            Order {
                sub_path: format!("/sub/{id}"),
                authorization: None,
                id,
            }
        })
        .collect()
}

/// The orders being created, filled in by the creation tasks.
struct Slots {
    orders: Vec<Mutex<Option<Order>>>,
    /// The next order number to create.
    next: AtomicUsize,
    /// Orders created so far.
    done: AtomicUsize,
}

impl Slots {
    /// Every order, once all are created. (The progress task may still
    /// hold the slots for a moment after its abort: they are taken out,
    /// not unwrapped from the `Arc`.)
    fn take_all(&self) -> anyhow::Result<Vec<Order>> {
        self.orders
            .iter()
            .map(|slot| {
                slot.lock()
                    .expect("not poisoned")
                    .take()
                    .context("order missing")
            })
            .collect()
    }
}

/// One creation task: creates the next order until all slots are taken.
async fn fill_slots(mut creator: OrderCreator, slots: &Slots) -> anyhow::Result<()> {
    loop {
        let o = slots.next.fetch_add(1, Relaxed);
        if o >= slots.orders.len() {
            return Ok(());
        }
        let order = creator.create_with_retries(o).await?;
        *slots.orders[o].lock().expect("not poisoned") = Some(order);
        slots.done.fetch_add(1, Relaxed);
    }
}

/// Creates orders through the gateway's API or straight over gRPC.
enum OrderCreator {
    Grpc(PaymentServiceClient<KeyedChannel>),
    Api(KeepAlive),
}

impl OrderCreator {
    async fn connect(
        via: CreateVia,
        core_url: String,
        api_key: &str,
        addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        Ok(match via {
            CreateVia::Grpc => Self::Grpc(PaymentServiceClient::with_interceptor(
                Channel::from_shared(core_url)?.connect().await?,
                ApiKey::new(api_key)?,
            )),
            CreateVia::Api => Self::Api(KeepAlive::new(addr)),
        })
    }

    /// Creates order number `o`, trying three times.
    async fn create_with_retries(&mut self, o: usize) -> anyhow::Result<Order> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.create(o).await {
                Ok(order) => return Ok(order),
                Err(error) if tries < 3 => {
                    progress(&format!("order {o}: {error:#}; retrying"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => return Err(error.context(format!("creating order {o}"))),
            }
        }
    }

    async fn create(&mut self, o: usize) -> anyhow::Result<Order> {
        match self {
            Self::Grpc(grpc) => create_via_grpc(grpc, o).await,
            Self::Api(api) => create_via_api(api, o).await,
        }
    }
}

async fn create_via_grpc(
    grpc: &mut PaymentServiceClient<KeyedChannel>,
    o: usize,
) -> anyhow::Result<Order> {
    let order = grpc
        .create_order(pb::CreateOrderRequest {
            amount_minor: 100,
            currency: "EUR".into(),
            description: format!("loadgen {o}"),
            idempotency_key: String::new(),
        })
        .await?
        .into_inner()
        .order
        .context("no order in response")?;
    Ok(Order {
        sub_path: format!("/api/orders/{}/events", order.order_id),
        authorization: Some(format!("Bearer {}", order.client_secret)),
        id: order.order_id,
    })
}

async fn create_via_api(api: &mut KeepAlive, o: usize) -> anyhow::Result<Order> {
    let body = format!(r#"{{"amount_minor":100,"currency":"EUR","description":"loadgen {o}"}}"#);
    let (status, body) = api.post_json("/api/orders", &body).await?;
    ensure!(
        status == 201,
        "POST /api/orders: HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let field = |name: &str| {
        json[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {name} in the order"))
    };
    Ok(Order {
        id: field("order_id")?,
        sub_path: field("events_url")?,
        authorization: Some(format!("Bearer {}", field("client_secret")?)),
    })
}

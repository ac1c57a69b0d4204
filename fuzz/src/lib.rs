//! Helpers the fuzz targets share.
//!
//! The targets read plain inputs (a request head, a header value, event
//! data, a signed report) so that the seed corpus in `corpus/<target>/` is
//! real, readable traffic. The choices a target makes besides the input
//! (sequence numbers, where a connection cuts the bytes, which field to
//! change) are drawn from [`Choices`], seeded by the input: the same input
//! always makes the same choices, so a crash input replays.

use sse_gateway::{
    PaymentCore,
    event::{NewOrder, OrderId, OrderView},
    payment_core::{CoreError, EventStream, EventsPage, OrderHistory},
};

/// A deterministic stream of numbers drawn from the input (FNV-1a of the
/// input seeds a SplitMix64 generator).
pub struct Choices(u64);

impl Choices {
    pub fn new(input: &[u8]) -> Self {
        let seed = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Self(seed)
    }

    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (which must not be 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.draw() % bound
    }

    /// A number that is small, at a type's edge, or anything, each often
    /// enough: where parsing and formatting bugs are.
    pub fn interesting_u64(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(1_000),
            1 => u64::MAX - self.below(3),
            _ => self.draw(),
        }
    }

    pub fn interesting_i64(&mut self) -> i64 {
        match self.below(5) {
            0 => 1_700_000_000 + self.below(100_000_000) as i64,
            1 => i64::MAX - self.below(3) as i64,
            2 => i64::MIN + self.below(3) as i64,
            _ => self.draw() as i64,
        }
    }
}

/// The sequence a `Last-Event-ID` value names, read independently of the
/// gateway: optional space or tab around an optional `+` and decimal
/// digits that fit a `u64`. `Some(None)` when there is nothing but
/// whitespace (a fresh start); `None` when it is not a sequence.
pub fn decimal(raw: &[u8]) -> Option<Option<u64>> {
    let trimmed = raw.trim_ascii();
    if trimmed.is_empty() {
        return Some(None);
    }
    let digits = trimmed.strip_prefix(b"+").unwrap_or(trimmed);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |value, digit| {
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        })
        .map(Some)
}

/// `AppState` wants a core; the targets render and parse, and never call it.
pub struct NoCore;

#[async_trait::async_trait]
impl PaymentCore for NoCore {
    async fn create_order(&self, _: NewOrder) -> Result<OrderView, CoreError> {
        Err(CoreError::NotFound)
    }

    async fn get_order(&self, _: OrderId) -> Result<OrderView, CoreError> {
        Err(CoreError::NotFound)
    }

    async fn order_history(&self, _: OrderId) -> Result<OrderHistory, CoreError> {
        Err(CoreError::NotFound)
    }

    async fn events(&self, _: u64, _: u32) -> Result<EventsPage, CoreError> {
        Err(CoreError::NotFound)
    }

    async fn watch_all(&self, _: u64) -> Result<EventStream, CoreError> {
        Err(CoreError::NotFound)
    }
}

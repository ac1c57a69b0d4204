//! The order state machine.
//!
//! ```text
//! CREATED ──> PROCESSING ──> SUCCEEDED | FAILED | CANCELED
//!    │             │
//!    ├─────────────┴──> EXPIRED            (expires_at passed)
//!    └──> SUCCEEDED | FAILED | CANCELED    (the provider may skip PROCESSING)
//! ```
//!
//! Terminal states are final. Asking for the state an order is already in is
//! idempotent ([`Decision::AlreadyThere`]): a repeated report is answered OK
//! and writes no event. Any other move out of a terminal state, or back to
//! PROCESSING, is a [`StatusConflict`].
//!
//! CREATED may go straight to a final state because the provider's
//! "payer opened the page" report can be lost or arrive late; a payment
//! result must still land.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Created,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        Self::Created,
        Self::Processing,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::Expired,
    ];

    /// Whether the order is over: [`OrderStatus::decide`] allows no move
    /// out of this status. Derived from the state machine, so the two cannot
    /// disagree.
    pub fn is_terminal(self) -> bool {
        Self::ALL
            .into_iter()
            .all(|target| !matches!(self.decide(target), Ok(Decision::Move)))
    }

    /// Lower-case name, as stored and as used for SSE event names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }

    pub fn from_str_opt(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }

    /// Whether an order in `self` may move to `target`.
    pub fn decide(self, target: OrderStatus) -> Result<Decision, StatusConflict> {
        use OrderStatus::*;
        match (self, target) {
            (current, target) if current == target && target != Created => {
                Ok(Decision::AlreadyThere)
            }
            (Created, Processing) => Ok(Decision::Move),
            (Created | Processing, Succeeded | Failed | Canceled | Expired) => Ok(Decision::Move),
            (current, target) => Err(StatusConflict {
                current,
                requested: target,
            }),
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write the new status and one event.
    Move,
    /// The order is already in the requested status: nothing to write.
    AlreadyThere,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order is {current} and cannot become {requested}")]
pub struct StatusConflict {
    pub current: OrderStatus,
    pub requested: OrderStatus,
}

#[cfg(test)]
mod tests {
    use super::{Decision::*, OrderStatus::*, *};

    /// The whole table: every (current, requested) pair and its answer.
    #[test]
    fn state_machine_table() {
        // Rows: current status; columns: requested status in `OrderStatus::ALL` order.
        // M = move, A = already there, X = conflict.
        let table: [(OrderStatus, &str); 6] = [
            (Created, "XMMMMM"),
            (Processing, "XAMMMM"),
            (Succeeded, "XXAXXX"),
            (Failed, "XXXAXX"),
            (Canceled, "XXXXAX"),
            (Expired, "XXXXXA"),
        ];
        for (current, row) in table {
            for (requested, expected) in OrderStatus::ALL.into_iter().zip(row.chars()) {
                let got = match current.decide(requested) {
                    Ok(Move) => 'M',
                    Ok(AlreadyThere) => 'A',
                    Err(conflict) => {
                        assert_eq!(conflict, StatusConflict { current, requested });
                        'X'
                    }
                };
                assert_eq!(got, expected, "{current} -> {requested}");
            }
        }
    }

    #[test]
    fn terminal_states_are_exactly_the_final_four() {
        let terminal: Vec<_> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Succeeded, Failed, Canceled, Expired]);
    }

    #[test]
    fn names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::from_str_opt(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::from_str_opt("paid"), None);
    }
}

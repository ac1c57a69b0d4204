//! Reaching one of several payment-core replicas: a client per replica,
//! and calls that move to the next replica when one is unreachable.
//!
//! Why not tonic's `balance_list`: it keeps routing calls to an endpoint
//! that refuses connections until its reconnect backoff gives up, and it
//! cannot say which replica a long-lived stream is on. Here a call goes to
//! the replica that answered last; an UNAVAILABLE answer (refused, reset,
//! or a replica cut off from its database) moves it to the next one and the
//! call is tried there, once per replica. Losing a replica therefore costs a
//! caller one failed attempt, and a stream one reconnect.
//!
//! Only calls that are safe to repeat may be passed to [`Replicas::call`]:
//! an UNAVAILABLE answer does not prove the first replica did nothing.
//! Others go through [`Replicas::call_once`].

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
};

use tonic::{Code, Status, transport::Channel};

/// Comma-separated gRPC URLs, as `PAYMENT_CORE_URL` gives them.
pub fn parse_urls(urls: &str) -> anyhow::Result<Vec<tonic::transport::Endpoint>> {
    let endpoints = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            Channel::from_shared(url.to_owned())
                .map_err(|error| anyhow::anyhow!("`{url}` is not a gRPC URL: {error}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!endpoints.is_empty(), "no payment-core URL given");
    Ok(endpoints)
}

/// `call`, or UNAVAILABLE once `bound` has passed, so that
/// [`Replicas::call`] moves to the next replica. tonic's deadlines
/// (`grpc-timeout`, `Endpoint::timeout`) start only once a connection is up:
/// a replica that accepts connections and never answers (frozen, or never
/// finishing a TLS handshake) would hold the call for as long as it stays
/// so.
pub async fn within<T>(
    bound: std::time::Duration,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
        Err(Status::unavailable(format!(
            "payment-core did not answer within {bound:?}"
        )))
    })
}

/// One client per replica, and which one answered last.
pub struct Replicas<C> {
    clients: Vec<C>,
    /// Index of the replica calls go to first. Relaxed: a stale read only
    /// means one more failed attempt.
    preferred: AtomicUsize,
}

impl<C: Clone> Replicas<C> {
    /// `clients` must not be empty ([`parse_urls`] ensures it).
    pub fn new(clients: Vec<C>) -> Self {
        assert!(!clients.is_empty(), "at least one replica");
        Self {
            clients,
            preferred: AtomicUsize::new(0),
        }
    }

    /// Runs `call` on the preferred replica only, for calls that are not
    /// safe to repeat; an UNAVAILABLE answer still moves the next call on.
    pub async fn call_once<T, F, Fut>(&self, call: F) -> Result<T, Status>
    where
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let index = self.preferred.load(Ordering::Relaxed) % self.clients.len();
        let answer = call(self.clients[index].clone()).await;
        if answer
            .as_ref()
            .is_err_and(|status| status.code() == Code::Unavailable)
        {
            self.preferred
                .store((index + 1) % self.clients.len(), Ordering::Relaxed);
        }
        answer
    }

    /// Runs `call` on the preferred replica, and on the next ones while the
    /// answer is UNAVAILABLE. Answers the first other answer, or the last
    /// UNAVAILABLE.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let first = self.preferred.load(Ordering::Relaxed) % self.clients.len();
        let mut unavailable = None;
        for attempt in 0..self.clients.len() {
            let index = (first + attempt) % self.clients.len();
            match call(self.clients[index].clone()).await {
                Err(status) if status.code() == Code::Unavailable => {
                    tracing::warn!(
                        replica = index,
                        message = status.message(),
                        "payment-core replica unavailable; trying the next"
                    );
                    self.preferred
                        .store((index + 1) % self.clients.len(), Ordering::Relaxed);
                    unavailable = Some(status);
                }
                answer => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return answer;
                }
            }
        }
        Err(unavailable.unwrap_or_else(|| Status::unavailable("no payment-core replica")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn an_unavailable_replica_is_skipped_and_the_next_call_starts_where_one_answered() {
        let replicas = Replicas::new(vec![0, 1, 2]);
        let tried = Mutex::new(Vec::new());
        let answer = replicas
            .call(|replica| {
                tried.lock().expect("lock").push(replica);
                async move {
                    match replica {
                        0 => Err(Status::unavailable("refused")),
                        _ => Ok(replica),
                    }
                }
            })
            .await;
        assert_eq!(answer.ok(), Some(1));
        let next = replicas
            .call(|replica| async move { Ok::<_, Status>(replica) })
            .await;
        assert_eq!(next.ok(), Some(1), "sticks to the replica that answered");
        assert_eq!(*tried.lock().expect("lock"), [0, 1]);
    }

    #[tokio::test]
    async fn other_errors_are_answers_and_are_not_retried_elsewhere() {
        let replicas = Replicas::new(vec![0, 1]);
        let mut calls = 0;
        let answer: Result<(), _> = replicas
            .call(|_| {
                calls += 1;
                async { Err(Status::not_found("no such order")) }
            })
            .await;
        assert_eq!(answer.map_err(|s| s.code()), Err(Code::NotFound));
        assert_eq!(calls, 1);
        let all_down: Result<(), _> = replicas
            .call(|_| async { Err(Status::unavailable("down")) })
            .await;
        assert_eq!(all_down.map_err(|s| s.code()), Err(Code::Unavailable));
    }

    #[test]
    fn urls_are_a_comma_separated_list() {
        let urls = parse_urls("http://a:50051, http://b:50051,").expect("two urls");
        assert_eq!(urls.len(), 2);
        assert!(parse_urls(" , ").is_err());
    }
}

// Property: a head the gateway serves itself (off hyper) is a plain GET of an event-stream path, and hyper reads the very same request from it.
#![no_main]

use std::{
    convert::Infallible,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{
    body::Body,
    http::{Method, Request, Response, header, request::Parts},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use libfuzzer_sys::fuzz_target;
use sse_gateway::{fuzzing::event_stream_request, routes::is_event_stream_path};
use tokio::io::AsyncWriteExt;

fuzz_target!(|head: &[u8]| {
    let Some(request) = event_stream_request(head) else {
        // Not served here: hyper gets the same bytes and judges them by its
        // own rules, so there is nothing more to hold this function to.
        return;
    };
    let (ours, _) = request.into_parts();

    // Served here only as a GET of a stream, and the path that was checked
    // is the path the router will route (no fragment, no decoding).
    assert_eq!(ours.method, Method::GET);
    assert!(
        is_event_stream_path(ours.uri.path()),
        "served a non-stream path {:?}",
        ours.uri
    );
    assert!(ours.uri.scheme().is_none() && ours.uri.authority().is_none());
    // No body can follow: no framing header but an empty length.
    assert!(!ours.headers.contains_key(header::TRANSFER_ENCODING));
    assert!(!ours.headers.contains_key(header::UPGRADE));
    assert!(
        ours.headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .all(|length| length == "0")
    );

    // The same bytes on a hyper connection configured as the gateway's:
    // hyper must accept them and see the same request, or the two paths of
    // the server would answer one request two ways.
    let theirs = hyper_reads(head).unwrap_or_else(|| {
        panic!(
            "hyper refuses a head served off hyper: {:?}",
            String::from_utf8_lossy(head)
        )
    });
    assert_eq!(ours.method, theirs.method);
    assert_eq!(ours.uri, theirs.uri);
    assert_eq!(ours.version, theirs.version);
    assert_eq!(ours.headers, theirs.headers);
});

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

/// The head of the first request hyper reads from `head` followed by the
/// end of the connection, or `None` if hyper serves no request from it.
fn hyper_reads(head: &[u8]) -> Option<Parts> {
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        client
            .write_all(head)
            .await
            .expect("the head fits the pipe");
        client.shutdown().await.expect("half-close");
        let seen: Arc<Mutex<Option<Parts>>> = Arc::default();
        let record = Arc::clone(&seen);
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let record = Arc::clone(&record);
            async move {
                record
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert(request.into_parts().0);
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        });
        // The gateway's settings (server.rs `serve_with_hyper`), and half
        // close: the client here ends its side right after the head, which
        // by default makes hyper drop the request unread.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .half_close(true)
            .serve_connection(TokioIo::new(server), service);
        // Ends at the end of input; an error after the first request (or
        // instead of it) is not what is compared here.
        let _ = connection.await;
        drop(client);
        seen.lock().expect("not poisoned").take()
    })
}

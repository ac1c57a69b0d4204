//! The OpenAPI description against the code: it describes the API's routes
//! and nothing else, the router serves each described operation with one of
//! the statuses and content types described for it and refuses the methods
//! not described, and `GET /openapi.json` serves it. schemathesis checks
//! the rest against a live gateway (`.ci/schemathesis.sh`).

use std::collections::BTreeSet;

use axum::{
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use serde_json::Value;
use sse_gateway::routes::{
    DASHBOARD_EVENTS, DASHBOARD_SESSION, HEALTHZ, METRICS, OPENAPI, ORDER, ORDER_EVENTS,
    ORDER_STREAM_TOKENS, ORDERS, READYZ, openapi::description,
};
use tower::ServiceExt;

use crate::helpers::router_without_core;

/// Every API route, from the route constants: pages are not API.
const API: [(&str, &str); 11] = [
    ("post", ORDERS),
    ("get", ORDER),
    ("get", ORDER_EVENTS),
    ("post", ORDER_STREAM_TOKENS),
    ("get", DASHBOARD_EVENTS),
    ("post", DASHBOARD_SESSION),
    ("delete", DASHBOARD_SESSION),
    ("get", HEALTHZ),
    ("get", READYZ),
    ("get", METRICS),
    ("get", OPENAPI),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The (method, path) of every operation in `description`.
fn operations(description: &Value) -> BTreeSet<(String, String)> {
    description["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .into_iter()
                .filter(|method| item.get(*method).is_some())
                .map(|method| (method.to_owned(), path.clone()))
        })
        .collect()
}

#[test]
fn the_description_has_exactly_the_api_routes() {
    let expected: BTreeSet<_> = API
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(operations(&description()), expected);
}

#[tokio::test]
async fn each_described_operation_is_served_as_described_and_no_other_method_is() {
    let description = description();
    // HEAD is GET without a body, as HTTP wants; OPTIONS and TRACE no
    // route serves.
    let probed = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let id = uuid::Uuid::new_v4().to_string();
    for (path, item) in description["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", &id);
        for method in &probed {
            let request = Request::builder()
                .method(method)
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = router_without_core().oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|value| value.to_str().unwrap().to_owned());
            let Some(operation) = item.get(method.as_str().to_lowercase()) else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: not described, so not served"
                );
                continue;
            };
            let described = &operation["responses"][status.as_str()];
            assert!(
                described.is_object(),
                "{method} {path} answered {status}, which its description does not list"
            );
            let media_types: Vec<&String> = described
                .get("content")
                .and_then(Value::as_object)
                .map(|content| content.keys().collect())
                .unwrap_or_default();
            match content_type {
                Some(content_type) => assert!(
                    media_types
                        .iter()
                        .any(|media_type| content_type.starts_with(media_type.as_str())),
                    "{method} {path} {status}: {content_type} is not one of {media_types:?}"
                ),
                None => assert!(
                    media_types.is_empty(),
                    "{method} {path} {status}: no content type"
                ),
            }
        }
    }
}

#[tokio::test]
async fn openapi_json_serves_the_description_in_openapi_3_1() {
    let request = Request::get(OPENAPI).body(Body::empty()).unwrap();
    let response = router_without_core().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let served: Value = serde_json::from_slice(&body).expect("JSON");
    assert!(
        served["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        served["openapi"]
    );
    assert_eq!(served, description());
}

#[test]
fn every_reference_and_link_of_the_description_resolves() {
    let description = description();
    let operation_ids: BTreeSet<&str> = description["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| METHODS.iter().filter_map(|method| item.get(*method)))
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let mut stack = vec![&description];
    let (mut references, mut links) = (0, 0);
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                    let pointer = reference.strip_prefix('#').expect("a local reference");
                    assert!(description.pointer(pointer).is_some(), "{reference}");
                    references += 1;
                }
                for link in object.get("links").and_then(Value::as_object).into_iter() {
                    for (name, link) in link {
                        let target = link["operationId"].as_str();
                        assert!(
                            target.is_some_and(|target| operation_ids.contains(target)),
                            "link {name}: {link}"
                        );
                        links += 1;
                    }
                }
                stack.extend(object.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(
        references > 0 && links > 0,
        "{references} references, {links} links"
    );
}

//! The OpenAPI 3.1 description of the gateway's HTTP API, served at
//! `GET /openapi.json`, for client authors and for the tools that test the
//! gateway against it (schemathesis, `.ci/schemathesis.sh`).
//!
//! It is generated from the code, never written by hand: each API handler
//! carries its `#[utoipa::path]` (path, method, parameters, every status it
//! can answer), the JSON types derive `ToSchema`, and [`super::api`] hands
//! each handler to axum and its description to the document in one step
//! (utoipa-axum), so no route is served undescribed or described unserved.
//! [`ApiDoc`] adds what no handler says: the title, the tags, and how
//! credentials are presented.

use std::sync::LazyLock;

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::routes::OPENAPI;

/// What the handlers' attributes leave out; [`super::api`] adds the paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sse-gateway",
        description = "Creates orders with payment-core and streams their results to browsers as server-sent events. Every error answer is JSON: `{\"error\": {\"code\", \"message\"}}`."
    ),
    modifiers(&Credentials),
    tags(
        (name = "orders", description = "The JSON API the checkout page calls."),
        (name = "streams", description = "Event streams (`text/event-stream`) of one order or of every order."),
        (name = "ops", description = "Liveness, readiness, metrics and this description."),
    ),
)]
pub struct ApiDoc;

/// How credentials are presented. None is ever in a URL but a stream
/// token, which lasts minutes and opens one order read-only.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "client_secret",
            bearer("The order's client secret, from its creation (`Authorization: Bearer cs_…`)."),
        );
        components.add_security_scheme(
            "stream_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "stream_token",
                "A stream token for this order, from POST /api/orders/{id}/stream-tokens: for EventSource, which cannot send headers.",
            ))),
        );
        components.add_security_scheme(
            "dashboard_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::extract::SESSION_COOKIE,
                "The session cookie POST /api/dashboard/session sets.",
            ))),
        );
        components.add_security_scheme(
            "admin_bearer",
            bearer("The dashboard's admin token (ADMIN_TOKEN)."),
        );
    }
}

/// The whole description, as served: [`ApiDoc`] and every route of
/// [`super::api`].
pub fn description() -> Value {
    let mut description =
        serde_json::to_value(super::api().into_openapi()).expect("the description serializes");
    spell_links_in_camel_case(&mut description);
    exact_sequence_maximum(&mut description);
    description
}

/// utoipa writes a `maximum` as an f64, and u64::MAX is not one: it comes
/// out as 2^64, which would describe values the server refuses.
fn exact_sequence_maximum(description: &mut Value) {
    if let Some(sequence) = description.pointer_mut("/components/schemas/Sequence") {
        sequence["maximum"] = Value::from(u64::MAX);
    }
}

/// utoipa 5 writes a Link object's fields as Rust spells them
/// (`operation_id`), which OpenAPI tools do not read (utoipa 6 spells them
/// `operationId`; this goes when the workspace moves to it).
fn spell_links_in_camel_case(description: &mut Value) {
    const FIELDS: [(&str, &str); 3] = [
        ("operation_id", "operationId"),
        ("operation_ref", "operationRef"),
        ("request_body", "requestBody"),
    ];
    // paths / {path} / {method} / responses / {status} / links / {name}
    let links = description
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links"))
        .filter_map(Value::as_object_mut)
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (rust, openapi) in FIELDS {
            if let Some(value) = link.remove(rust) {
                link.insert(openapi.to_owned(), value);
            }
        }
    }
}

/// Rendered once: it cannot change while the process runs.
static DESCRIPTION_JSON: LazyLock<Bytes> = LazyLock::new(|| {
    serde_json::to_vec(&description())
        .expect("the description serializes")
        .into()
});

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = OPENAPI,
    tag = "ops",
    summary = "This description",
    responses((status = OK, description = "The OpenAPI 3.1 description of this API.", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DESCRIPTION_JSON.clone(),
    )
        .into_response()
}

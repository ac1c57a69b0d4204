//! The payment page: `GET /pay/{order_id}` shows the order (read from
//! payment-core, so the payer can only pay the order's own amount) and
//! reports that the payer opened it; `POST /pay/{order_id}` reports the
//! payer's decision, signed, and shows the result.

use std::sync::Arc;

use axum::{
    Form, Router,
    extract::{Path, State, rejection::FormRejection},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use payments_proto::{currency::format_minor, payments::v1 as pb};
use serde::Deserialize;
use service_kit::credentials::{self, DevMode};

use crate::{
    config::ServeConfig,
    pages,
    reporter::{Outcome, ReportError, Reporter},
};

/// Longest decline reason a payer's form may carry.
const MAX_REASON_CHARS: usize = 200;

#[derive(Clone)]
pub struct ProviderState {
    pub reporter: Reporter,
    pub config: Arc<ServeConfig>,
    /// In development mode the pages a payer sees say so.
    pub dev: DevMode,
    /// What `/metrics` renders.
    pub metrics_registry: Arc<prometheus_client::registry::Registry>,
}

pub fn router(state: ProviderState) -> Router {
    Router::new()
        .route("/pay/{order_id}", get(payment_page).post(decide))
        .route("/assets/mockpay.css", get(stylesheet))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            service_kit::metrics::PATH,
            get(|State(state): State<ProviderState>| {
                service_kit::metrics::metrics_handler(State(state.metrics_registry))
            }),
        )
        .fallback(|| async { PageError::Invalid("This page does not exist.".into()) })
        // Failures are logged once, by the error type that knows their cause.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(service_kit::telemetry::http_request_span)
                .on_failure(()),
        )
        .with_state(state)
}

/// Why a page could not be shown, as the page the payer sees instead.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("this payment link is not valid")]
    UnknownOrder,
    #[error("{0}")]
    Finished(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("the payment service is unavailable")]
    Unavailable(String),
    #[error("the payment could not be processed")]
    Internal(String),
}

impl From<ReportError> for PageError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::NotFound => Self::UnknownOrder,
            ReportError::Invalid(message) => Self::Invalid(message),
            ReportError::AlreadyFinished(_) => {
                Self::Finished("This order is already finished; nothing was charged again.")
            }
            ReportError::Unavailable(cause) => Self::Unavailable(cause),
            other @ (ReportError::Unauthenticated | ReportError::Other(_)) => {
                Self::Internal(other.to_string())
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::UnknownOrder => (
                StatusCode::NOT_FOUND,
                "Payment link not valid",
                "This payment link does not match any order. Go back to the shop and start again."
                    .to_owned(),
            ),
            Self::Finished(message) => (
                StatusCode::CONFLICT,
                "Order already finished",
                (*message).to_owned(),
            ),
            Self::Invalid(message) => (
                StatusCode::BAD_REQUEST,
                "Request not valid",
                message.clone(),
            ),
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "payment-core unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The payment service is busy. Please try again in a moment.".to_owned(),
                )
            }
            Self::Internal(cause) => {
                tracing::error!(%cause, "payment page failed");
                (
                    StatusCode::BAD_GATEWAY,
                    "Payment not processed",
                    "Something went wrong on our side; you were not charged. Please try again."
                        .to_owned(),
                )
            }
        };
        (status, Html(pages::message_page(title, &message))).into_response()
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLESHEET,
    )
}

fn finished_message(status: pb::OrderStatus) -> &'static str {
    match status {
        pb::OrderStatus::Succeeded => "This order is already paid. You can close this window.",
        pb::OrderStatus::Failed => {
            "The payment for this order was declined. Start a new order in the shop."
        }
        pb::OrderStatus::Canceled => "This order was canceled. Start a new order in the shop.",
        _ => "The payment window for this order has expired. Start a new order in the shop.",
    }
}

fn check_order_id(raw: &str) -> Result<(), PageError> {
    uuid::Uuid::try_parse(raw)
        .map(drop)
        .map_err(|_| PageError::UnknownOrder)
}

async fn payment_page(
    State(state): State<ProviderState>,
    Path(order_id): Path<String>,
) -> Result<Html<String>, PageError> {
    check_order_id(&order_id)?;
    let order = state.reporter.order(&order_id).await?;
    if order.status().is_terminal() {
        return Err(PageError::Finished(finished_message(order.status())));
    }
    // The payer is here: the checkout page learns the payment is under way.
    // The page was opened for the order, so its reports join the order's
    // trace: this one, and the decision's, through the form.
    let trace_parent = (!order.trace_parent.is_empty()).then_some(order.trace_parent.as_str());
    state
        .reporter
        .report(&order_id, Outcome::Processing, "", trace_parent)
        .await?;
    let amount = format_minor(order.amount_minor, &order.currency);
    Ok(shown(
        &state,
        pages::pay_page(
            &order_id,
            &state.config.merchant_name,
            &order.description,
            &amount,
            &order.trace_parent,
        ),
    ))
}

/// `page` as the payer gets it: in development mode, with the marker that
/// says so.
fn shown(state: &ProviderState, page: String) -> Html<String> {
    if state.dev.enabled {
        Html(credentials::mark_page(&page))
    } else {
        Html(page)
    }
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    decision: String,
    #[serde(default)]
    reason: String,
    /// The order's trace, carried by the page (empty: untraced).
    #[serde(default)]
    traceparent: String,
}

async fn decide(
    State(state): State<ProviderState>,
    Path(order_id): Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<Html<String>, PageError> {
    check_order_id(&order_id)?;
    let Form(form) = form.map_err(|rejection| PageError::Invalid(rejection.body_text()))?;
    let (outcome, reason) = match form.decision.as_str() {
        "pay" => (Outcome::Succeeded, String::new()),
        "decline" => {
            let reason = form.reason.trim();
            if reason.chars().count() > MAX_REASON_CHARS {
                return Err(PageError::Invalid(format!(
                    "The decline reason must be at most {MAX_REASON_CHARS} characters."
                )));
            }
            (
                Outcome::Failed,
                if reason.is_empty() {
                    "card declined".to_owned()
                } else {
                    reason.to_owned()
                },
            )
        }
        "cancel" => (Outcome::Canceled, "canceled by the payer".to_owned()),
        other => {
            return Err(PageError::Invalid(format!(
                "Unknown decision `{other}`: choose pay, decline or cancel."
            )));
        }
    };
    let delay = state.config.report_delay();
    if !delay.is_zero() {
        tracing::info!(%order_id, ?delay, "delaying the report (PROVIDER_REPORT_DELAY_MS)");
        tokio::time::sleep(delay).await;
    }
    let trace_parent = (!form.traceparent.is_empty()).then_some(form.traceparent.as_str());
    let (order, _) = state
        .reporter
        .report(&order_id, outcome, &reason, trace_parent)
        .await?;
    if state.config.duplicate_reports {
        let (_, changed) = state
            .reporter
            .report(&order_id, outcome, &reason, trace_parent)
            .await?;
        tracing::info!(%order_id, changed, "sent the report twice (PROVIDER_DUPLICATE_REPORTS)");
    }
    let amount = format_minor(order.amount_minor, &order.currency);
    let page = match outcome {
        Outcome::Succeeded => pages::result_page(
            "succeeded",
            "Payment approved",
            &format!("You paid {amount} to {}.", state.config.merchant_name),
        ),
        Outcome::Failed => pages::result_page(
            "failed",
            "Payment declined",
            &format!("Your payment of {amount} was declined: {reason}."),
        ),
        _ => pages::result_page(
            "canceled",
            "Payment canceled",
            &format!("You canceled the payment of {amount}. Nothing was charged."),
        ),
    };
    Ok(shown(&state, page))
}

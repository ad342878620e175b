//! Athena's HTTP surface: the axum router for `/api/v1`, the operations endpoints (`/health`,
//! `/metrics`, `/docs`, `/openapi.json`) and the built web app at `/` (a placeholder page until it is built).
//!
//! Handlers are thin: extract and parse, call one use case on [`athena_app::App`], map the result.
//! Every error leaves through [`error::ApiError`], which renders the envelope and the stable code of
//! `CONTRACTS.md`; no handler picks a status code for an error itself. This crate holds no SQL and no
//! business rules.

mod auth;
mod error;
mod extract;
pub mod health;
mod idempotency;
mod metrics;
mod openapi;
pub mod report;
mod routes;
mod state;
mod views;
mod web;

pub use error::ApiError;
pub use health::{ComponentHealth, HealthCheck, HealthReport};
pub use metrics::{metrics_handle, refresh_queue_gauges};
pub use routes::router;
pub use state::ApiState;

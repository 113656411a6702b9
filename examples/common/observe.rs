//! What every HTTP example reports about itself: `GET /metrics` (Prometheus
//! text format, handoff's metrics with the `metrics` feature, names prefixed
//! `handoff_`) and `GET /readyz` (200 while serving, 503 from the moment a
//! shutdown begins, the shutdown delay included).
//!
//! [`install`] puts the Prometheus recorder in place before the `Handoff` is
//! built (handoff takes its metric handles then); the readiness is
//! `cli::readiness`.

#![allow(dead_code)] // each example uses the part it needs

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once; a failure is logged and
/// `/metrics` then says so).
pub fn install() {
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => _ = PROMETHEUS.set(handle),
        Err(e) => tracing::warn!("no metrics: cannot install the Prometheus recorder: {e}"),
    }
}

/// `GET /metrics`: the status and the body.
pub fn metrics() -> (u16, String) {
    match PROMETHEUS.get() {
        Some(prometheus) => (200, prometheus.render()),
        None => (503, "no metrics recorder\n".into()),
    }
}

/// `GET /readyz`: 200 `ready serving generation=N pid=PID` while serving,
/// 503 `unready ...` from the moment a shutdown begins.
pub fn readyz() -> (u16, String) {
    match super::cli::readiness() {
        (true, text) => (200, text),
        (false, text) => (503, text),
    }
}

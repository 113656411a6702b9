//! What every HTTP example reports about itself: `GET /metrics` (Prometheus
//! text format, handoff's metrics with the `metrics` feature, names prefixed
//! `handoff_`) and `GET /readyz` (200 while serving, 503 from the moment a
//! shutdown begins, the shutdown delay included).
//!
//! [`install`] puts the Prometheus recorder in place before the `Handoff` is
//! built (handoff takes its metric handles then); [`set_handle`] keeps the
//! generation's handle once it is built.

#![allow(dead_code)] // each example uses the part it needs

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();
static HANDLE: OnceLock<handoff::Handle> = OnceLock::new();

/// Installs the Prometheus recorder (once; a failure is logged and
/// `/metrics` then says so).
pub fn install() {
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => _ = PROMETHEUS.set(handle),
        Err(e) => tracing::warn!("no metrics: cannot install the Prometheus recorder: {e}"),
    }
}

/// Keeps this generation's handle for `/readyz`.
pub fn set_handle(handle: handoff::Handle) {
    _ = HANDLE.set(handle);
}

/// `GET /metrics`: the status and the body.
pub fn metrics() -> (u16, String) {
    match PROMETHEUS.get() {
        Some(prometheus) => (200, prometheus.render()),
        None => (503, "no metrics recorder\n".into()),
    }
}

/// `GET /readyz`: 200 `ready STATE generation=N pid=PID` while serving, 503
/// `unready ...` from the moment a shutdown begins.
pub fn readyz() -> (u16, String) {
    let pid = std::process::id();
    let Some(handle) = HANDLE.get() else {
        return (503, format!("unready starting pid={pid}\n"));
    };
    let state = handle.state();
    let generation = handle.generation();
    match state.is_ready() {
        true => (
            200,
            format!("ready {state} generation={generation} pid={pid}\n"),
        ),
        false => (
            503,
            format!("unready {state} generation={generation} pid={pid}\n"),
        ),
    }
}

//! What a server tells a load balancer and a scraper: its readiness (`GET
//! /readyz`, or the echo example's line `ready`: `ready STATE generation=N
//! pid=PID`, HTTP 200; `unready STATE ...`, HTTP 503) and its Prometheus page
//! (`GET /metrics`). Each asked on a new connection; every wait bounded.

use std::time::{Duration, Instant};

use super::client::{Protocol, RawConn, Request, Target};
use super::process::T5;

/// The readiness on a new connection: whether ready, and the answer's text.
/// An HTTP status that disagrees with the text fails the test.
pub async fn readiness(target: &Target) -> (bool, String) {
    let mut conn = RawConn::connect(target).await;
    let reply = conn
        .ask(Request::Ready)
        .await
        .unwrap_or_else(|e| panic!("{target:?}: readiness: {e}"));
    let text = reply.text().trim().to_string();
    let ready = text.starts_with("ready ");
    if target.protocol == Protocol::Http {
        let status = if ready { 200 } else { 503 };
        assert_eq!(reply.status, status, "{target:?}: {reply:?}");
    }
    (ready, text)
}

/// Asks the readiness until it is `ready` (bounded: 5 s, then the test
/// fails); the answer's text.
pub async fn readiness_until(target: &Target, ready: bool) -> String {
    let start = Instant::now();
    loop {
        let (now, text) = readiness(target).await;
        if now == ready {
            return text;
        }
        assert!(
            start.elapsed() < T5,
            "{target:?}: readiness still {text:?} after {T5:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /metrics` on a new connection: the page, which must come with 200.
pub async fn metrics(target: &Target) -> String {
    let mut conn = RawConn::connect(target).await;
    conn.send_get("/metrics")
        .await
        .unwrap_or_else(|e| panic!("{target:?}: send GET /metrics: {e}"));
    let page = conn
        .reply()
        .await
        .unwrap_or_else(|e| panic!("{target:?}: GET /metrics: {e}"));
    assert_eq!(page.status, 200, "{target:?}: {page:?}");
    page.text().into_owned()
}

/// `GET /metrics` until `done` holds of the page (bounded: 5 s); the last
/// page, for the caller's assertions.
pub async fn metrics_until(target: &Target, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let page = metrics(target).await;
        if done(&page) || start.elapsed() > T5 {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the sample `name` (labels included, as rendered) in a
/// Prometheus text page.
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

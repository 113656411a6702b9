//! The runtime conformance suite: the same guarantees on every runtime.
//!
//! One line per runtime flavour; each expands to a module (named after the
//! flavour) with one test per scenario of `tests/conformance_suite/`:
//! restart under load, long-lived connection drained cleanly, bad successor
//! rolled back, shutdown within stop + kill timeout, drain signal delivered.
//!
//! A line is compiled only when the test build has its `features` (those
//! its example requires); `h2` says whether the example speaks HTTP/2 with
//! prior knowledge on plain TCP; `idle_grace_ms` how long after draining starts
//! it may keep a keep-alive connection open for its next request (the idle grace, 1 s by default in every adapter). Adding a runtime: its adapter, its example
//! with the HTTP example contract (see `tests/conformance_suite/mod.rs`), and
//! one line here.
//!
//! ```sh
//! cargo test --features tokio,hyper,tls --test conformance -- --nocapture
//! ```

mod common;
#[macro_use]
mod conformance_suite;
mod http_common;

conformance! { tokio, example = "demo", features = ["tokio", "hyper", "tls"], h2 = true, idle_grace_ms = 1000 }
conformance! { smol, example = "smol", features = ["smol", "hyper"], h2 = true, idle_grace_ms = 1000 }
conformance! { async_std, example = "async_std", features = ["async-std", "hyper"], h2 = true, idle_grace_ms = 1000 }
conformance! { actix, example = "actix", features = ["actix"], h2 = false, idle_grace_ms = 1000 }

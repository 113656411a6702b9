//! The conformance suite: the same guarantees from every flavour, a runtime
//! or protocol with its example server.
//!
//! One line per flavour; each expands to a module named after it, with one
//! test per scenario of `tests/conformance_suite/` that its protocol has. A
//! line is compiled only when the test build has its `features` (those its
//! example requires). `http(h2 = ..)` says that the example speaks HTTP/1.1,
//! and HTTP/2 with prior knowledge on plain TCP or not; `lines` that it
//! speaks the echo example's line protocol. `idle_grace_ms`: how long after
//! draining starts it may keep an idle connection that served a request open
//! for its next one. `supervise = true`: the example runs with
//! `--supervise`, a supervisor whose workers are the generations; the
//! scenarios are the same, with what supervisor mode promises where it
//! differs (see each scenario). Adding a flavour: its adapter, an example
//! with the contract of `tests/conformance_suite/mod.rs`, and one line here.
//!
//! ```sh
//! cargo test --features tokio,hyper,tls --test conformance -- --nocapture
//! ```

// A build without every flavour runs part of the suite; a build with all of
// them uses every part of it, and of the harness.
#![cfg_attr(
    not(all(
        feature = "tokio",
        feature = "hyper",
        feature = "tls",
        feature = "smol",
        feature = "async-std",
        feature = "actix"
    )),
    allow(
        dead_code,
        reason = "a build without every flavour runs part of the suite"
    )
)]

mod harness {
    pub mod client;
    pub mod external;
    pub mod http;
    pub mod load;
    pub mod notify;
    pub mod observe;
    pub mod peer;
    pub mod process;
    pub mod server;
}
#[macro_use]
mod conformance_suite;

conformance! { tokio, example = "demo", features = ["tokio", "hyper", "tls"], http(h2 = true), idle_grace_ms = 1000 }
conformance! { smol, example = "smol", features = ["smol", "hyper"], http(h2 = true), idle_grace_ms = 1000 }
conformance! { async_std, example = "async_std", features = ["async-std", "hyper"], http(h2 = true), idle_grace_ms = 1000 }
conformance! { actix, example = "actix", features = ["actix"], http(h2 = false), idle_grace_ms = 1000 }
conformance! { echo, example = "echo", features = ["tokio"], lines, idle_grace_ms = 0 }
conformance! { tokio_supervised, example = "demo", features = ["tokio", "hyper", "tls"], http(h2 = true), idle_grace_ms = 1000, supervise = true }
conformance! { smol_supervised, example = "smol", features = ["smol", "hyper"], http(h2 = true), idle_grace_ms = 1000, supervise = true }
conformance! { async_std_supervised, example = "async_std", features = ["async-std", "hyper"], http(h2 = true), idle_grace_ms = 1000, supervise = true }
conformance! { actix_supervised, example = "actix", features = ["actix"], http(h2 = false), idle_grace_ms = 1000, supervise = true }
conformance! { echo_supervised, example = "echo", features = ["tokio"], lines, idle_grace_ms = 0, supervise = true }

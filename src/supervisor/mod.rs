//! Supervisor mode: one stable process that holds the listening sockets and
//! runs each generation as its child.

pub mod machine;
mod wire;

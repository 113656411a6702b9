//! Guarantee: a restart starts the binary now installed at the path the
//! server was started from, not the one it is running: after a deploy
//! (new file renamed over the old path), the successor runs the new file.

#[allow(dead_code, reason = "this test uses part of the harness")]
mod harness {
    pub mod client;
    pub mod process;
    pub mod server;
}

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use harness::client::Target;
use harness::process::Signal;
use harness::server::{self, Server};

fn inode(path: impl AsRef<Path>) -> u64 {
    fs::metadata(path).expect("stat").ino()
}

/// Copies the example to `dest` through a new file renamed over it.
fn deploy(dest: &Path) {
    let tmp = dest.with_extension("installing");
    fs::copy(server::example("echo"), &tmp).expect("copy the example");
    fs::rename(&tmp, dest).expect("rename it into place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_runs_the_newly_installed_binary() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let installed = dir.path().join("echo");
    deploy(&installed);
    let server = Server::start(&installed, dir.path(), &[]);
    let target = Target::of(&server.wait_started());
    let old = server.first_pid;
    let old_inode = inode(format!("/proc/{old}/exe"));

    // Deploy: a new file (new inode) renamed over the path.
    deploy(&installed);
    let new_inode = inode(&installed);
    assert_ne!(old_inode, new_inode);
    let exe_link = fs::read_link(format!("/proc/{old}/exe")).unwrap();
    println!(
        "running binary of the old generation now: {}",
        exe_link.display()
    );

    let r = server.restart(Signal::HUP);
    assert_eq!(inode(format!("/proc/{}/exe", r.new)), new_inode);
    assert_eq!(target.ask_pid().await, r.new);
}

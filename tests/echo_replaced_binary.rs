//! Guarantee: a restart starts the binary now installed at the path the
//! server was started from, not the one it is running: after a deploy
//! (new file renamed over the old path), the successor runs the new file.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;

fn inode(path: &str) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn restart_runs_the_newly_installed_binary() {
    let dir = TempDir::new("exe");
    let installed = dir.join("echo");
    replace_with_copy(&installed, &echo_bin(), 0o755);
    let server = Server::start(&installed, &dir, &[]);
    let target = server.wait_serving(0, 1, T30).remove(0).target();
    let old = server.wait_pid_file(T30);
    let old_inode = inode(&format!("/proc/{old}/exe"));

    // Deploy: a new file (new inode) renamed over the path.
    replace_with_copy(&installed, &echo_bin(), 0o755);
    let new_inode = std::fs::metadata(&installed).unwrap().ino();
    assert_ne!(old_inode, new_inode);
    let exe_link = std::fs::read_link(format!("/proc/{old}/exe")).unwrap();
    println!(
        "running binary of the old generation now: {}",
        exe_link.display()
    );

    let (_, new, _) = server.restart(Signal::HUP, T30);
    assert_eq!(inode(&format!("/proc/{new}/exe")), new_inode);
    assert_eq!(ask_pid(&target), new);
}

//! The README's first command: `cairn demo` works offline and dnf installs from it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn demo_serves_a_snapshot_dnf_installs_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .env("CAIRN_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        printed.push(line.clone());
        if let Some(u) = line.trim().strip_prefix("Browse:") {
            url = Some(u.trim().to_string());
        }
        if line.contains("install demo-app") {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("demo printed no URL:\n{}", printed.join("\n")));
    assert!(
        printed.iter().any(|l| l.contains("--repofrompath=demo,")),
        "the dnf line is printed"
    );
    let installed = dnf_install(&url, &["demo-app"]);
    assert!(installed.contains(&"demo-app".to_string()), "{installed:?}");
    assert!(installed.contains(&"demo-lib".to_string()), "{installed:?}");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "demo exits cleanly on Ctrl-C: {status}");
}

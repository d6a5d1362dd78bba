//! `qwenedit serve` under a `Type=notify` unit: READY=1 once it listens, WATCHDOG=1 pings at
//! half of WATCHDOG_USEC, STOPPING=1 on SIGTERM. A unix datagram socket plays systemd.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support;

fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

#[test]
fn serve_tells_systemd_it_is_ready_alive_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "127.0.0.1:0", "");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut child = Command::new(support::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = vec![next(&socket)];
    // The watchdog pings every 100 ms; READY may come before or after the first ping.
    while seen.iter().filter(|m| *m == "WATCHDOG=1").count() < 2 {
        seen.push(next(&socket));
    }
    assert!(seen.contains(&"READY=1".to_string()), "{seen:?}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    loop {
        let m = next(&socket);
        if m == "STOPPING=1" {
            break;
        }
        assert_eq!(m, "WATCHDOG=1", "only pings before stopping");
    }
    assert!(child.wait().unwrap().success());
}

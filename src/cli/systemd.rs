//! systemd's notify protocol for `Type=notify` units: READY=1 once the service listens,
//! WATCHDOG=1 at half the unit's `WatchdogSec` while the runtime is alive, STOPPING=1 on
//! shutdown. Every call is a no-op unless systemd started us (NOTIFY_SOCKET is set).

use sd_notify::NotifyState;

fn send(state: NotifyState) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

pub fn ready() {
    send(NotifyState::Ready);
}

pub fn stopping() {
    send(NotifyState::Stopping);
}

/// Pings systemd's watchdog until dropped (aborted); returns at once without a watchdog.
pub async fn watchdog() {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tick.tick().await;
        send(NotifyState::Watchdog);
    }
}

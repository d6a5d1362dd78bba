//! Fault injection for the crash suite (`tests/it/crash_points.rs`): compiled into the binary,
//! inert unless `QWENEDIT_CRASH_AT=<point>[:<n>]` is set when the process starts. Then the
//! `n`-th time (default: the first) the process reaches the named point it sends itself SIGKILL:
//! no destructor, flush or shutdown code runs, exactly as with `kill -9` at that line.
//!
//! The points, in a job's life (each a one-line `crash_point` call where it happens):
//! `confirm` (the bot took the confirm, the card became the status message, nothing held yet),
//! `held` (points held and the intent written, not yet queued), `leased` (a worker leased it,
//! nothing sent to ComfyUI), `running` (ComfyUI started it), `finished` (ComfyUI finished and
//! the outputs are saved, the queue does not know yet), `completed` (the queue recorded the
//! success, the points are not captured yet), `delivered` (the result was sent to the chat, not
//! yet marked delivered).
//!
//! The payment points: `yookassa_paid` (YooKassa's re-read answered succeeded, the credit not
//! yet written), `yookassa_credited` (the credit written, the notification not yet answered,
//! the user not yet told), `stars_paid` (a `successful_payment` arrived, the credit not yet
//! written), `stars_credited` (the Stars credit written, the user not yet told). Tested by `tests/it/crash_payments.rs`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The environment variable that arms a crash point.
pub const CRASH_AT: &str = "QWENEDIT_CRASH_AT";

/// Every crash point: a job's, in its order, then the payments'.
pub const POINTS: &[&str] = &[
    "confirm",
    "held",
    "leased",
    "running",
    "finished",
    "completed",
    "delivered",
    "yookassa_paid",
    "yookassa_credited",
    "stars_paid",
    "stars_credited",
];

struct Armed {
    point: &'static str,
    at: u32,
    hits: AtomicU32,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

/// Reads `QWENEDIT_CRASH_AT` (once per process) and logs an armed point.
pub fn init() {
    if let Some(a) = armed() {
        tracing::warn!(
            point = a.point,
            at = a.at,
            "crash point armed (fault injection)"
        );
    }
}

fn armed() -> Option<&'static Armed> {
    ARMED
        .get_or_init(|| parse(&std::env::var(CRASH_AT).ok()?))
        .as_ref()
}

/// `<point>` or `<point>:<n>` with a known point and `n >= 1`.
fn parse(value: &str) -> Option<Armed> {
    let (name, at) = match value.split_once(':') {
        Some((name, n)) => (name, n.parse().ok().filter(|n| *n >= 1)?),
        None => (value, 1),
    };
    let Some(point) = POINTS.iter().find(|p| **p == name) else {
        tracing::error!(value, "unknown crash point; none armed");
        return None;
    };
    Some(Armed {
        point,
        at,
        hits: AtomicU32::new(0),
    })
}

/// The process reached `point`: dies here when that point is armed and this is its `n`-th hit.
pub fn crash_point(point: &'static str) {
    let Some(a) = armed() else { return };
    if a.point != point || a.hits.fetch_add(1, Ordering::SeqCst) + 1 != a.at {
        return;
    }
    tracing::warn!(point, "crash point reached: SIGKILL");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn crash_point_values() {
        let a = parse("held").unwrap();
        assert_eq!((a.point, a.at), ("held", 1));
        let a = parse("delivered:3").unwrap();
        assert_eq!((a.point, a.at), ("delivered", 3));
        for bad in ["", "nowhere", "held:0", "held:x", "held:", ":2"] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}

//! Text the operator reads in the terminal.

use std::fmt::Write;

use crate::ops::{PromoView, TopupOutcome, UserView};
use crate::store::LedgerCheck;

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

pub fn topup(o: &TopupOutcome) -> String {
    let mut s = String::new();
    if o.created_user {
        let _ = writeln!(s, "created user {}", o.user);
    }
    if o.duplicate {
        let _ = writeln!(
            s,
            "already applied (same key): nothing changed; user {} has {} points",
            o.user, o.balance
        );
    } else {
        let _ = writeln!(
            s,
            "added {} points to user {}; balance is now {}",
            o.points, o.user, o.balance
        );
    }
    s
}

pub fn user(v: &UserView) -> String {
    let mut s = String::new();
    let name = v
        .username
        .as_deref()
        .map(|u| format!(" (@{u})"))
        .unwrap_or_default();
    let _ = writeln!(s, "user {}{name}", v.id);
    let _ = writeln!(s, "  balance:   {} points", v.balance);
    let _ = writeln!(s, "  language:  {}", v.language.as_deref().unwrap_or("-"));
    let _ = writeln!(s, "  joined:    {}", time(v.created_ms));
    let seen = if v.last_seen_ms == 0 {
        "never (not in the bot yet)".to_string()
    } else {
        time(v.last_seen_ms)
    };
    let _ = writeln!(s, "  last seen: {seen}");
    let flags: Vec<&str> = [
        (v.admin, "admin"),
        (v.unlimited, "unlimited"),
        (v.banned, "banned"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let _ = writeln!(
        s,
        "  flags:     {}",
        if flags.is_empty() {
            "-".to_string()
        } else {
            flags.join(", ")
        }
    );
    let _ = writeln!(s, "ledger (newest first):");
    if v.ledger.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for e in &v.ledger {
        // The payment id (`stars:<charge id>` for `admin refund-stars`), promocode or week.
        let reference = e
            .reference
            .as_deref()
            .map(|r| format!("  {r}"))
            .unwrap_or_default();
        let note = e
            .note
            .as_deref()
            .map(|n| format!("{reference}  \"{n}\""))
            .unwrap_or(reference);
        let line = format!(
            "  #{:<5} {}  {:>+7}  {:<12}{note}",
            e.id,
            time(e.at_ms),
            e.delta,
            e.reason
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
    let _ = writeln!(s, "jobs (newest first):");
    if v.jobs.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for j in &v.jobs {
        let _ = writeln!(
            s,
            "  {}  {}  {:<13} {:>4} points  {}",
            j.id,
            time(j.created_ms),
            j.state,
            j.price,
            j.preset.as_deref().unwrap_or(&j.workflow)
        );
    }
    s
}

pub fn ledger_check(c: &LedgerCheck) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "checked {} users and {} ledger entries",
        c.users, c.entries
    );
    for (user, balance) in &c.debts {
        let _ = writeln!(
            s,
            "user {user} owes {} points (a refund of points already spent)",
            -balance
        );
    }
    if c.is_consistent() {
        let _ = writeln!(s, "ok: every balance equals the sum of its entries");
        return s;
    }
    for (user, cached, computed) in &c.mismatches {
        let _ = writeln!(
            s,
            "MISMATCH user {user}: balance {cached}, entries sum to {computed}"
        );
    }
    for user in &c.negative {
        let _ = writeln!(s, "NEGATIVE user {user}");
    }
    for key in &c.bad_keys {
        let _ = writeln!(s, "BAD KEY {key}");
    }
    s
}

pub fn promos(codes: &[PromoView]) -> String {
    let mut s = String::new();
    if codes.is_empty() {
        let _ = writeln!(s, "no promocodes yet");
        return s;
    }
    let _ = writeln!(
        s,
        "{:<24} {:>7} {:>11}  {:<23} state",
        "code", "points", "used", "expires"
    );
    for c in codes {
        let expires = c.expires_ms.map_or("-".to_string(), time);
        let state = if c.disabled {
            "disabled"
        } else if c.used >= c.uses {
            "used up"
        } else {
            "active"
        };
        let _ = writeln!(
            s,
            "{:<24} {:>7} {:>5} of {:<3}  {:<23} {state}",
            c.code, c.points, c.used, c.uses, expires
        );
    }
    s
}

pub fn refund(o: &crate::ops::RefundOutcome) -> String {
    if o.already {
        return format!(
            "charge {} was refunded before: nothing changed; user {} has {} points\n",
            o.charge_id, o.user, o.balance
        );
    }
    let mut s = format!(
        "refunded {} Stars to user {} (charge {}); took back {} points",
        o.stars, o.user, o.charge_id, o.points
    );
    if o.debt > 0 {
        let _ = write!(s, ", {} of them as debt (already spent)", o.debt);
    }
    let _ = writeln!(s, "; balance is now {}", o.balance);
    s
}

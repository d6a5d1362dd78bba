//! Why a balance changed. Every change of points is a ledger entry with one of these reasons.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// The one-time welcome bonus on the first /start.
    Welcome,
    /// An operator's top-up (CLI, admin API or admin bot command).
    Topup,
    /// Points set aside for a job (negative delta).
    Hold,
    /// A held job succeeded; its points are spent (zero delta, kept for the audit trail).
    Capture,
    /// A held job failed or was cancelled; its points come back (positive delta).
    Release,
    /// A payment was credited.
    Payment,
    /// A promocode was redeemed.
    Promo,
    /// The weekly bonus.
    WeeklyBonus,
    /// An operator's debit or refund correction (negative delta).
    Debit,
    /// A payment was refunded: its points are taken back, as far as the balance covers them.
    Refund,
    /// The part of a refund the balance did not cover: the one way a balance goes below zero.
    Debt,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Welcome => "welcome",
            Reason::Topup => "topup",
            Reason::Hold => "hold",
            Reason::Capture => "capture",
            Reason::Release => "release",
            Reason::Payment => "payment",
            Reason::Promo => "promo",
            Reason::WeeklyBonus => "weekly_bonus",
            Reason::Debit => "debit",
            Reason::Refund => "refund",
            Reason::Debt => "debt",
        }
    }
}

//! Pure domain types: ids, points, jobs, ledger reasons. No I/O, no async, no storage formats.

pub mod ids;
pub mod job;
pub mod ledger;
pub mod moderation;
pub mod points;
pub mod preset;

pub use ids::{JobId, LeaseToken, UserId};
pub use job::{JobError, JobSpec, JobState, Lane};
pub use ledger::Reason;
pub use points::Points;

//! What a job is, independent of how it is stored or run.

use serde::{Deserialize, Serialize};

use super::{Points, UserId};

/// Which lane a job waits in. The priority lane is served first (paid priority, admins).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    Priority,
    #[default]
    Normal,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Priority => "priority",
            Lane::Normal => "normal",
        }
    }
}

/// What the user asked for. Input files are names we generated inside the data dir; never a
/// user's file name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub user: UserId,
    /// The Telegram chat to deliver to, if the job came from Telegram.
    pub chat: Option<i64>,
    pub inputs: Vec<String>,
    pub preset: Option<String>,
    pub prompt: Option<String>,
    pub workflow: String,
    pub seed: u64,
    pub price: Points,
    pub lane: Lane,
}

/// The life of a job. Terminal states are `Succeeded`, `Failed`, `DeadLettered` and `Cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    /// A permanent error: retrying would not help.
    Failed,
    /// Transient errors exhausted every attempt.
    DeadLettered,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// Whether the points held for a job in this state are spent (`Some(true)`), returned
    /// (`Some(false)`) or still held (`None`).
    pub fn settles_hold(self) -> Option<bool> {
        match self {
            JobState::Queued | JobState::Running => None,
            JobState::Succeeded => Some(true),
            JobState::Failed | JobState::DeadLettered | JobState::Cancelled => Some(false),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::DeadLettered => "dead_lettered",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::DeadLettered,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Why a run failed. `message` is for the log and the operator, never for the Telegram user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub transient: bool,
    pub message: String,
}

impl JobError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            transient: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::DeadLettered,
            JobState::Cancelled,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("nope"), None);
    }

    #[test]
    fn only_success_spends_the_hold() {
        assert_eq!(JobState::Succeeded.settles_hold(), Some(true));
        assert_eq!(JobState::Cancelled.settles_hold(), Some(false));
        assert_eq!(JobState::Running.settles_hold(), None);
    }
}

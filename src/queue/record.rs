//! `JobRecord`: how a job is stored in the queue (and in the redb intent), versioned.

use serde::{Deserialize, Serialize};

use crate::codec::Versioned;
use crate::domain::{JobId, JobSpec, JobState, Lane, LeaseToken, Points, UserId};

/// The on-disk form of a job's request. Kept apart from `domain::JobSpec` so the domain type can
/// change without changing the format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSpec {
    user: i64,
    chat: Option<i64>,
    inputs: Vec<String>,
    preset: Option<String>,
    prompt: Option<String>,
    workflow: String,
    seed: u64,
    price: u32,
    priority: bool,
}

impl From<&JobSpec> for StoredSpec {
    fn from(s: &JobSpec) -> Self {
        Self {
            user: s.user.get(),
            chat: s.chat,
            inputs: s.inputs.clone(),
            preset: s.preset.clone(),
            prompt: s.prompt.clone(),
            workflow: s.workflow.clone(),
            seed: s.seed,
            price: s.price.get(),
            priority: s.lane == Lane::Priority,
        }
    }
}

impl From<StoredSpec> for JobSpec {
    fn from(s: StoredSpec) -> Self {
        Self {
            user: UserId::new(s.user),
            chat: s.chat,
            inputs: s.inputs,
            preset: s.preset,
            prompt: s.prompt,
            workflow: s.workflow,
            seed: s.seed,
            price: Points::new(s.price),
            lane: if s.priority {
                Lane::Priority
            } else {
                Lane::Normal
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum StoredState {
    Queued,
    Running,
    Succeeded,
    Failed,
    DeadLettered,
    Cancelled,
}

impl From<JobState> for StoredState {
    fn from(s: JobState) -> Self {
        match s {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running,
            JobState::Succeeded => Self::Succeeded,
            JobState::Failed => Self::Failed,
            JobState::DeadLettered => Self::DeadLettered,
            JobState::Cancelled => Self::Cancelled,
        }
    }
}

impl From<StoredState> for JobState {
    fn from(s: StoredState) -> Self {
        match s {
            StoredState::Queued => Self::Queued,
            StoredState::Running => Self::Running,
            StoredState::Succeeded => Self::Succeeded,
            StoredState::Failed => Self::Failed,
            StoredState::DeadLettered => Self::DeadLettered,
            StoredState::Cancelled => Self::Cancelled,
        }
    }
}

/// A lease as stored: who holds the job and until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub token: u64,
    pub backend: String,
    pub expires_ms: i64,
}

/// What a finished job produced: output files inside the data dir.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub outputs: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    spec: StoredSpec,
    state: StoredState,
    pub attempts: u32,
    pub lease: Option<Lease>,
    /// A retried job waits until then.
    pub not_before_ms: i64,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The backend of the latest attempt.
    pub backend: Option<String>,
    /// The latest error, for the log and the operator (never shown to users as is).
    pub last_error: Option<String>,
    pub result: Option<JobResult>,
}

impl Versioned for JobRecord {
    const NAME: &'static str = "job";
    const VERSION: u8 = 1;
}

impl JobRecord {
    pub fn new(id: JobId, spec: &JobSpec, now_ms: i64) -> Self {
        Self {
            id,
            spec: spec.into(),
            state: StoredState::Queued,
            attempts: 0,
            lease: None,
            not_before_ms: now_ms,
            created_ms: now_ms,
            started_ms: None,
            finished_ms: None,
            backend: None,
            last_error: None,
            result: None,
        }
    }

    pub fn spec(&self) -> JobSpec {
        self.spec.clone().into()
    }

    pub fn user(&self) -> UserId {
        UserId::new(self.spec.user)
    }

    pub fn lane(&self) -> Lane {
        if self.spec.priority {
            Lane::Priority
        } else {
            Lane::Normal
        }
    }

    pub fn price(&self) -> Points {
        Points::new(self.spec.price)
    }

    pub fn state(&self) -> JobState {
        self.state.into()
    }

    pub(super) fn set_state(&mut self, state: JobState) {
        self.state = state.into();
    }

    pub fn lease_token(&self) -> Option<LeaseToken> {
        self.lease.as_ref().map(|l| LeaseToken::from_raw(l.token))
    }
}

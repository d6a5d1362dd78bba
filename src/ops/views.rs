//! Serializable views of users, ledger entries and jobs: what the admin API returns and the
//! CLI prints, whether it talks to the daemon or opens the store itself.

use serde::{Deserialize, Serialize};

use super::UserSummary;
use crate::queue::JobRecord;
use crate::store::LedgerEntry;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LedgerEntryView {
    pub id: u64,
    pub delta: i64,
    pub reason: String,
    pub key: String,
    pub job: Option<String>,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub at_ms: i64,
}

impl From<&LedgerEntry> for LedgerEntryView {
    fn from(e: &LedgerEntry) -> Self {
        Self {
            id: e.id,
            delta: e.delta,
            reason: e.reason.as_str().into(),
            key: e.key.clone(),
            job: e.job.map(|j| j.to_string()),
            reference: e.reference.clone(),
            note: e.note.clone(),
            at_ms: e.at_ms,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub user: i64,
    pub state: String,
    pub preset: Option<String>,
    pub workflow: String,
    pub price: u32,
    pub attempts: u32,
    pub backend: Option<String>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub last_error: Option<String>,
    pub outputs: Vec<String>,
    /// Time spent waiting before the first attempt started.
    #[serde(default)]
    pub wait_ms: Option<i64>,
    /// From the first start to the end.
    #[serde(default)]
    pub run_ms: Option<i64>,
    /// The prompt sent to the model (the preset's text for presets).
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub seed: u64,
}

impl From<&JobRecord> for JobView {
    fn from(r: &JobRecord) -> Self {
        let spec = r.spec();
        Self {
            id: r.id.to_string(),
            user: r.user().get(),
            state: r.state().as_str().into(),
            preset: spec.preset,
            workflow: spec.workflow,
            price: r.price().get(),
            attempts: r.attempts,
            backend: r.backend.clone(),
            created_ms: r.created_ms,
            started_ms: r.started_ms,
            finished_ms: r.finished_ms,
            last_error: r.last_error.clone(),
            outputs: r
                .result
                .as_ref()
                .map(|x| x.outputs.clone())
                .unwrap_or_default(),
            wait_ms: r.started_ms.map(|s| s - r.created_ms),
            run_ms: r.started_ms.zip(r.finished_ms).map(|(s, f)| f - s),
            prompt: spec.prompt,
            seed: spec.seed,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: Option<String>,
    pub language: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub admin: bool,
    pub unlimited: bool,
    pub banned: bool,
    pub balance: i64,
    pub ledger: Vec<LedgerEntryView>,
    pub jobs: Vec<JobView>,
    /// Absent in answers of an older daemon.
    #[serde(default)]
    pub payments: Vec<super::PaymentView>,
}

impl From<UserSummary> for UserView {
    fn from(s: UserSummary) -> Self {
        Self {
            id: s.user.id.get(),
            username: s.user.username,
            language: s.user.language,
            created_ms: s.user.created_ms,
            last_seen_ms: s.user.last_seen_ms,
            admin: s.user.admin,
            unlimited: s.user.unlimited,
            banned: s.user.banned,
            balance: s.balance,
            ledger: s.ledger.iter().map(Into::into).collect(),
            jobs: s.jobs.iter().map(Into::into).collect(),
            payments: s.payments.iter().map(Into::into).collect(),
        }
    }
}

//! The YooKassa API v3 client. **The only module that knows YooKassa's JSON**: Basic auth
//! `shopId:secretKey`, an `Idempotence-Key` on every POST derived from our order id (so a retry
//! returns the same payment instead of creating a second one), typed errors that say whether a
//! retry may help. The secret key is never logged (it is a `SecretString`, sent only in the
//! Authorization header).

mod types;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use types::{Amount, NewPayment, NewReceipt, Payment, Shop, Status, notification_payment_id};

use crate::config;

/// Attempts of a create, with these pauses between them; the same key each time.
const CREATE_ATTEMPTS: usize = 3;
const CREATE_PAUSES_MS: [u64; 2] = [200, 800];

#[derive(Debug, thiserror::Error)]
pub enum YooError {
    #[error("YooKassa refused the request (HTTP {status}, {code}): {description}")]
    Api {
        status: u16,
        code: String,
        description: String,
        parameter: Option<String>,
    },
    #[error("YooKassa has no such payment")]
    NotFound,
    #[error("YooKassa is unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    #[error("YooKassa did not answer in time")]
    Timeout,
    #[error("cannot reach YooKassa: {0}")]
    Network(String),
    #[error("unexpected answer from YooKassa: {0}")]
    Decode(String),
}

impl YooError {
    /// Whether the same request may succeed later (5xx, 429, timeouts, network).
    pub fn is_retryable(&self) -> bool {
        match self {
            YooError::Unavailable { .. } | YooError::Timeout | YooError::Network(_) => true,
            YooError::Api { status, .. } => *status == 429,
            YooError::NotFound | YooError::Decode(_) => false,
        }
    }
}

/// The `Idempotence-Key` of the payment for `order_id`: stable across retries and restarts,
/// at most 64 characters (YooKassa's limit).
pub fn idempotence_key(order_id: &str) -> String {
    let mut key: String = format!("qwenedit-{order_id}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    key.truncate(64);
    key
}

/// A cheap-clone client for one shop.
#[derive(Clone, Debug)]
pub struct Client(std::sync::Arc<Inner>);

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: reqwest::Url,
    shop_id: String,
    secret_key: SecretString,
}

impl Client {
    pub fn new(cfg: &config::YooKassa) -> Self {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("qwenedit/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Client(std::sync::Arc::new(Inner {
            http,
            base: cfg.api_url.clone(),
            shop_id: cfg.shop_id.clone(),
            secret_key: cfg.secret_key.clone(),
        }))
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, YooError> {
        self.0
            .base
            .join(path)
            .map_err(|e| YooError::Decode(format!("bad URL {path:?}: {e}")))
    }

    /// Creates a payment, retrying transient failures with the same `Idempotence-Key`: YooKassa
    /// answers a repeat with the payment the first request created.
    pub async fn create_payment(&self, new: &NewPayment) -> Result<Payment, YooError> {
        let key = idempotence_key(&new.order_id);
        let body = serde_json::to_vec(&new.request())
            .map_err(|e| YooError::Decode(format!("cannot encode the request: {e}")))?;
        let url = self.url("payments")?;
        let mut attempt = 0;
        loop {
            let sent = self
                .0
                .http
                .post(url.clone())
                .basic_auth(&self.0.shop_id, Some(self.0.secret_key.expose_secret()))
                .header("Idempotence-Key", &key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match read::<Payment>(sent).await {
                Err(e) if e.is_retryable() && attempt + 1 < CREATE_ATTEMPTS => {
                    tracing::warn!(order = %new.order_id, error = %e, "YooKassa create failed; retrying with the same key");
                    tokio::time::sleep(Duration::from_millis(CREATE_PAUSES_MS[attempt])).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The shop these credentials belong to (`GET /me`), for `qwenedit doctor`.
    pub async fn shop(&self) -> Result<Shop, YooError> {
        let sent = self
            .0
            .http
            .get(self.url("me")?)
            .basic_auth(&self.0.shop_id, Some(self.0.secret_key.expose_secret()))
            .send()
            .await;
        read(sent).await
    }

    /// Reads a payment (one attempt; callers settle again later on failure).
    pub async fn get_payment(&self, id: &str) -> Result<Payment, YooError> {
        let plausible = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plausible {
            return Err(YooError::NotFound);
        }
        let sent = self
            .0
            .http
            .get(self.url(&format!("payments/{id}"))?)
            .basic_auth(&self.0.shop_id, Some(self.0.secret_key.expose_secret()))
            .send()
            .await;
        let payment: Payment = read(sent).await?;
        if payment.id != id {
            return Err(YooError::Decode(format!(
                "asked for payment {id}, got {}",
                payment.id
            )));
        }
        Ok(payment)
    }
}

fn transport(e: reqwest::Error) -> YooError {
    if e.is_timeout() {
        YooError::Timeout
    } else {
        YooError::Network(e.without_url().to_string())
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, YooError> {
    let resp = sent.map_err(transport)?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| YooError::Decode(e.to_string()));
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(YooError::NotFound);
    }
    if status.is_server_error() {
        return Err(YooError::Unavailable {
            status: status.as_u16(),
        });
    }
    let body: types::ApiErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
    Err(YooError::Api {
        status: status.as_u16(),
        code: body.code.unwrap_or_else(|| "unknown".into()),
        description: body.description.unwrap_or_default(),
        parameter: body.parameter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotence_keys_are_stable_and_short() {
        let id = format!("order:{}", ulid::Ulid::new());
        let key = idempotence_key(&id);
        assert_eq!(key, idempotence_key(&id));
        assert!(
            key.len() <= 64 && key.starts_with("qwenedit-order-"),
            "{key}"
        );
        assert_ne!(key, idempotence_key("order:other"));
        assert_eq!(idempotence_key(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(YooError::Timeout.is_retryable());
        assert!(YooError::Unavailable { status: 503 }.is_retryable());
        let api = |status| YooError::Api {
            status,
            code: "x".into(),
            description: String::new(),
            parameter: None,
        };
        assert!(api(429).is_retryable());
        assert!(!api(400).is_retryable());
        assert!(!api(401).is_retryable());
        assert!(!YooError::NotFound.is_retryable());
    }
}

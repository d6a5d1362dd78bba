//! YooKassa's JSON, as far as qwenedit uses it. Responses are read leniently (unknown fields
//! are ignored); requests are built from typed structs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `{"value": "199.00", "currency": "RUB"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub value: String,
    pub currency: String,
}

impl Amount {
    /// An amount in kopecks (or cents) as YooKassa writes it: `19900` → `"199.00"`.
    pub fn minor(units: u64, currency: &str) -> Self {
        Amount {
            value: format!("{}.{:02}", units / 100, units % 100),
            currency: currency.to_string(),
        }
    }

    /// The value in minor units: `"199.00"` → `19900`, `"199.5"` → `19950`, `"199"` → `19900`.
    /// `None` for anything else (negative, more than two decimals, not a number).
    pub fn to_minor(&self) -> Option<u64> {
        let (whole, frac) = match self.value.split_once('.') {
            Some((w, f)) => (w, f),
            None => (self.value.as_str(), ""),
        };
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 2 {
            return None;
        }
        let whole: u64 = whole.parse().ok()?;
        let frac: u64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<u64>().ok()? * 10,
            _ => frac.parse().ok()?,
        };
        whole.checked_mul(100)?.checked_add(frac)
    }
}

/// What qwenedit asks YooKassa to create.
#[derive(Clone, Debug)]
pub struct NewPayment {
    /// Kopecks.
    pub amount: u64,
    pub description: String,
    /// Our order id; also the source of the `Idempotence-Key`.
    pub order_id: String,
    pub user_id: i64,
    pub return_url: String,
    pub receipt: Option<NewReceipt>,
}

#[derive(Clone, Debug)]
pub struct NewReceipt {
    pub email: String,
    pub description: String,
    pub vat_code: u8,
}

#[derive(Serialize)]
pub(super) struct CreateRequest<'a> {
    pub amount: Amount,
    pub capture: bool,
    pub description: &'a str,
    pub metadata: BTreeMap<&'static str, String>,
    pub confirmation: ConfirmationRequest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptRequest<'a>>,
}

#[derive(Serialize)]
pub(super) struct ConfirmationRequest<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub return_url: &'a str,
}

#[derive(Serialize)]
pub(super) struct ReceiptRequest<'a> {
    pub customer: Customer<'a>,
    pub items: Vec<ReceiptItem<'a>>,
}

#[derive(Serialize)]
pub(super) struct Customer<'a> {
    pub email: &'a str,
}

#[derive(Serialize)]
pub(super) struct ReceiptItem<'a> {
    pub description: &'a str,
    pub quantity: &'static str,
    pub amount: Amount,
    pub vat_code: u8,
    pub payment_subject: &'static str,
    pub payment_mode: &'static str,
}

impl NewPayment {
    pub(super) fn request(&self) -> CreateRequest<'_> {
        let amount = Amount::minor(self.amount, "RUB");
        CreateRequest {
            amount: amount.clone(),
            capture: true,
            description: &self.description,
            metadata: BTreeMap::from([
                ("order_id", self.order_id.clone()),
                ("user_id", self.user_id.to_string()),
            ]),
            confirmation: ConfirmationRequest {
                kind: "redirect",
                return_url: &self.return_url,
            },
            receipt: self.receipt.as_ref().map(|r| ReceiptRequest {
                customer: Customer { email: &r.email },
                items: vec![ReceiptItem {
                    description: &r.description,
                    quantity: "1.00",
                    amount,
                    vat_code: r.vat_code,
                    payment_subject: "service",
                    payment_mode: "full_payment",
                }],
            }),
        }
    }
}

/// A payment as YooKassa reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct Payment {
    pub id: String,
    pub status: Status,
    pub amount: Amount,
    #[serde(default)]
    pub paid: bool,
    #[serde(default)]
    pub test: bool,
    /// Metadata values are strings in YooKassa's API; anything else is dropped.
    #[serde(default, deserialize_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub confirmation: Option<Confirmation>,
}

impl Payment {
    pub fn order_id(&self) -> Option<&str> {
        self.metadata.get("order_id").map(String::as_str)
    }

    pub fn user_id(&self) -> Option<i64> {
        self.metadata.get("user_id").and_then(|u| u.parse().ok())
    }

    pub fn confirmation_url(&self) -> Option<&str> {
        self.confirmation
            .as_ref()
            .and_then(|c| c.confirmation_url.as_deref())
    }
}

/// `GET /me`: the shop the credentials belong to.
#[derive(Clone, Debug, Deserialize)]
pub struct Shop {
    #[serde(default, deserialize_with = "text")]
    pub account_id: String,
    #[serde(default)]
    pub test: bool,
    #[serde(default)]
    pub fiscalization_enabled: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A string or a number, as text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    WaitingForCapture,
    Succeeded,
    Canceled,
    #[serde(other)]
    Unknown,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Confirmation {
    #[serde(default)]
    pub confirmation_url: Option<String>,
}

fn string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

/// `{"type":"error","id":"...","code":"invalid_request","description":"...","parameter":"..."}`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct ApiErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameter: Option<String>,
}

#[derive(Deserialize)]
struct Notification {
    object: NotificationObject,
}

#[derive(Deserialize)]
struct NotificationObject {
    id: String,
}

/// The payment id of a notification body (`{"type":"notification","event":...,"object":{"id":...}}`).
/// Nothing else of the body is trusted: the payment is re-read from the API. `None` when the body
/// has no object id or the id is not a plausible YooKassa id.
pub fn notification_payment_id(body: &[u8]) -> Option<String> {
    let n: Notification = serde_json::from_slice(body).ok()?;
    let id = n.object.id;
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_in_minor_units() {
        assert_eq!(Amount::minor(19_900, "RUB").value, "199.00");
        assert_eq!(Amount::minor(5, "RUB").value, "0.05");
        let v = |s: &str| {
            Amount {
                value: s.into(),
                currency: "RUB".into(),
            }
            .to_minor()
        };
        assert_eq!(v("199.00"), Some(19_900));
        assert_eq!(v("199.5"), Some(19_950));
        assert_eq!(v("199"), Some(19_900));
        assert_eq!(v("0.01"), Some(1));
        for bad in ["", ".5", "-1.00", "1.001", "1e3", "1,00", " 1.00", "1.0a"] {
            assert_eq!(v(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn notifications_yield_only_a_plausible_payment_id() {
        let body = br#"{"type":"notification","event":"payment.succeeded","object":{"id":"2f3c-000f-5000-9000-1a2b","status":"succeeded","amount":{"value":"1.00","currency":"RUB"},"new_field":[1,2]}}"#;
        assert_eq!(
            notification_payment_id(body).as_deref(),
            Some("2f3c-000f-5000-9000-1a2b")
        );
        assert_eq!(notification_payment_id(b"not json"), None);
        assert_eq!(notification_payment_id(br#"{"object":{}}"#), None);
        assert_eq!(
            notification_payment_id(br#"{"object":{"id":"../x"}}"#),
            None
        );
    }

    #[test]
    fn payments_parse_leniently() {
        let p: Payment = serde_json::from_str(
            r#"{"id":"p1","status":"waiting_for_capture","amount":{"value":"10.00","currency":"RUB"},
                "metadata":{"order_id":"order:1","user_id":"42","n":3},"extra":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(p.status, Status::WaitingForCapture);
        assert_eq!(p.order_id(), Some("order:1"));
        assert_eq!(p.user_id(), Some(42));
        assert!(!p.test && !p.paid);
        let odd: Payment = serde_json::from_str(
            r#"{"id":"p2","status":"refunded_somehow","amount":{"value":"1","currency":"RUB"}}"#,
        )
        .unwrap();
        assert_eq!(odd.status, Status::Unknown);
    }
}

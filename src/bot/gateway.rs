//! What `ops` asks of Telegram ([`ops::Telegram`]): Stars refunds, the Star transaction list
//! for reconciliation, and the weekly bonus notices, over the bot's own Bot API client.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::callback::Callback;
use super::prefs::Prefs;
use super::texts::{Lang, Texts};
use super::tg::{Markup, Tg, TgError};
use crate::config::Config;
use crate::domain::UserId;
use crate::ops::{self, BoxFuture, StarTransaction, TelegramError, WeeklyNotice};
use crate::store::Store;

/// Pace of notices: under Telegram's ~30 messages/s, with room for the bot's other traffic.
const NOTICE_EVERY: Duration = Duration::from_millis(40);

/// The bot's side of `ops::Telegram`; `None` without a token.
pub fn gateway(
    config: &Config,
    store: &Store,
    telemetry: &crate::telemetry::Telemetry,
) -> Option<Arc<dyn ops::Telegram>> {
    let token = config.telegram.token.clone()?;
    Some(Arc::new(Gateway {
        tg: Tg::new(token, config.telegram.api_url.clone(), telemetry.clone()),
        texts: Texts::default(),
        store: store.clone(),
    }))
}

struct Gateway {
    tg: Tg,
    texts: Texts,
    store: Store,
}

fn failed(e: TgError) -> TelegramError {
    match e {
        TgError::Api(m) if m.contains("CHARGE_ALREADY_REFUNDED") => TelegramError::AlreadyRefunded,
        other => TelegramError::Failed(other.to_string()),
    }
}

/// A user's invoice payment (`source`) or its refund (`receiver`); anything else is `None`.
pub fn star_transaction(tx: &Value) -> Option<StarTransaction> {
    let (partner, refund) = match (tx.get("source"), tx.get("receiver")) {
        (Some(p), _) if p.get("type").and_then(Value::as_str) == Some("user") => (p, false),
        (_, Some(p)) if p.get("type").and_then(Value::as_str) == Some("user") => (p, true),
        _ => return None,
    };
    if partner.get("transaction_type").and_then(Value::as_str) != Some("invoice_payment") {
        return None;
    }
    Some(StarTransaction {
        id: tx.get("id")?.as_str()?.to_string(),
        user: UserId::new(partner.pointer("/user/id")?.as_i64()?),
        amount: u32::try_from(tx.get("amount")?.as_u64()?).ok()?,
        payload: partner
            .get("invoice_payload")
            .and_then(Value::as_str)
            .map(str::to_string),
        refund,
    })
}

impl ops::Telegram for Gateway {
    fn refund_star_payment<'a>(
        &'a self,
        user: UserId,
        charge_id: &'a str,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        Box::pin(async move {
            self.tg
                .refund_star_payment(user.get(), charge_id)
                .await
                .map_err(failed)
        })
    }

    fn star_transactions(
        &self,
        offset: u32,
        limit: u32,
    ) -> BoxFuture<'_, Result<(Vec<StarTransaction>, usize), TelegramError>> {
        Box::pin(async move {
            let raw = self
                .tg
                .star_transactions(offset, limit)
                .await
                .map_err(failed)?;
            Ok((raw.iter().filter_map(star_transaction).collect(), raw.len()))
        })
    }

    fn weekly_notices(&self, notices: Vec<WeeklyNotice>) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let mut sent = 0;
            for n in notices {
                let wanted = Prefs::load(&self.store, n.user)
                    .map(|p| p.weekly_notices)
                    .unwrap_or(true);
                let user = self.store.user(n.user).ok().flatten();
                if !wanted || user.as_ref().is_none_or(|u| u.banned) {
                    continue;
                }
                let lang = user
                    .and_then(|u| u.language)
                    .as_deref()
                    .and_then(Lang::parse)
                    .unwrap_or(Lang::Ru);
                let text = self.texts.get(
                    lang,
                    "weekly-notice",
                    &[("n", n.points.into()), ("balance", n.balance.into())],
                );
                let off = Markup::Inline(vec![vec![(
                    self.texts.t(lang, "btn-notices-off"),
                    Callback::StopNotices,
                )]]);
                match self.tg.send_text(n.user.get(), &text, &off).await {
                    Ok(_) => sent += 1,
                    Err(e) => {
                        tracing::info!(user = %n.user, error = %e, "weekly notice not delivered")
                    }
                }
                tokio::time::sleep(NOTICE_EVERY).await;
            }
            sent
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_payments_and_refunds_and_skips_the_rest() {
        let user = json!({ "id": 42, "is_bot": false, "first_name": "A" });
        let paid = json!({ "id": "c1", "amount": 140, "date": 1,
            "source": { "type": "user", "transaction_type": "invoice_payment", "user": user, "invoice_payload": "order:1" } });
        let refund = json!({ "id": "c1", "amount": 140, "date": 2,
            "receiver": { "type": "user", "transaction_type": "invoice_payment", "user": user, "invoice_payload": "order:1" } });
        let withdrawal = json!({ "id": "w", "amount": 1000, "date": 3,
            "receiver": { "type": "fragment" } });
        let future = json!({ "id": "f", "amount": 5, "date": 4,
            "source": { "type": "something_new_in_bot_api_12" } });
        let gift = json!({ "id": "g", "amount": 5, "date": 5,
            "source": { "type": "user", "transaction_type": "gift_purchase", "user": user } });
        let p = star_transaction(&paid).unwrap();
        assert_eq!(
            (
                p.id.as_str(),
                p.user.get(),
                p.amount,
                p.payload.as_deref(),
                p.refund
            ),
            ("c1", 42, 140, Some("order:1"), false)
        );
        assert!(star_transaction(&refund).unwrap().refund);
        for other in [withdrawal, future, gift] {
            assert_eq!(star_transaction(&other), None);
        }
    }
}

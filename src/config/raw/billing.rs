//! `[billing]` as written, and its checks into [`Billing`].

use serde::Deserialize;

use super::fields::text;
use crate::config::values::{parse_time, parse_weekday};
use crate::config::{Billing, ConfigError, Pack};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBilling {
    welcome_points: u32,
    edit_price: u32,
    weekly_bonus: u32,
    #[serde(deserialize_with = "text::req")]
    weekly_bonus_day: String,
    #[serde(deserialize_with = "text::req")]
    weekly_bonus_time: String,
    unlimited_users: Vec<i64>,
    test_mode: bool,
    #[serde(deserialize_with = "text::req")]
    time_zone: String,
    packs: Vec<Pack>,
    payments_per_minute: u32,
    payments_enabled: bool,
}

impl Default for RawBilling {
    fn default() -> Self {
        Self {
            welcome_points: 60,
            edit_price: 30,
            weekly_bonus: 10,
            weekly_bonus_day: "monday".into(),
            weekly_bonus_time: "12:00".into(),
            unlimited_users: Vec::new(),
            test_mode: false,
            time_zone: "Europe/Moscow".into(),
            packs: vec![
                Pack {
                    points: 100,
                    stars: 50,
                    rub: Some(99),
                    bonus: 0,
                },
                Pack {
                    points: 300,
                    stars: 140,
                    rub: Some(279),
                    bonus: 30,
                },
                Pack {
                    points: 1000,
                    stars: 400,
                    rub: Some(790),
                    bonus: 150,
                },
            ],
            payments_per_minute: 5,
            payments_enabled: true,
        }
    }
}

impl RawBilling {
    pub(super) fn validate(self) -> Result<Billing, ConfigError> {
        let billing = Billing {
            welcome_points: self.welcome_points,
            edit_price: self.edit_price,
            weekly_bonus: self.weekly_bonus,
            weekly_bonus_day: parse_weekday(&self.weekly_bonus_day)
                .map_err(|m| ConfigError::key("billing.weekly_bonus_day", m))?,
            weekly_bonus_time: parse_time(&self.weekly_bonus_time)
                .map_err(|m| ConfigError::key("billing.weekly_bonus_time", m))?,
            unlimited_users: self.unlimited_users,
            test_mode: self.test_mode,
            time_zone: self.time_zone,
            packs: self.packs,
            payments_per_minute: self.payments_per_minute.max(1),
            payments_enabled: self.payments_enabled,
        };
        for (i, p) in billing.packs.iter().enumerate() {
            if p.points == 0 || p.stars == 0 || p.stars > 100_000 || p.rub == Some(0) {
                return Err(ConfigError::key(
                    format!("billing.packs[{i}]"),
                    "points and stars must be positive (stars at most 100000), rub positive if set",
                ));
            }
        }
        if billing.packs.len() > 8 {
            return Err(ConfigError::key("billing.packs", "at most 8 packs"));
        }
        if jiff::tz::TimeZone::get(&billing.time_zone).is_err() {
            return Err(ConfigError::key(
                "billing.time_zone",
                format!(
                    "{:?} is not a time zone name like \"Europe/Moscow\"",
                    billing.time_zone
                ),
            ));
        }
        Ok(billing)
    }
}

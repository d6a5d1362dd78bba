//! Points are the only currency: whole numbers, never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative amount of points (a price, a top-up, a balance).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Points(u32);

/// Amounts above this are refused as typos (a billion points is not a plausible top-up).
pub const MAX_AMOUNT: u32 = 1_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("the amount must be a whole number of points, got {0:?}")]
    NotANumber(String),
    #[error("the amount must be positive, got {0}")]
    NotPositive(i64),
    #[error("the amount is too large: {0} (at most {MAX_AMOUNT})")]
    TooLarge(i64),
}

impl Points {
    pub const ZERO: Points = Points(0);

    pub const fn new(v: u32) -> Self {
        Self(v)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    pub const fn as_i64(self) -> i64 {
        self.0 as i64
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses an amount an operator typed: a positive whole number up to [`MAX_AMOUNT`].
    pub fn parse_positive(text: &str) -> Result<Self, AmountError> {
        let v: i64 = text
            .trim()
            .parse()
            .map_err(|_| AmountError::NotANumber(text.to_string()))?;
        Self::positive(v)
    }

    pub fn positive(v: i64) -> Result<Self, AmountError> {
        if v <= 0 {
            return Err(AmountError::NotPositive(v));
        }
        if v > i64::from(MAX_AMOUNT) {
            return Err(AmountError::TooLarge(v));
        }
        Ok(Self(v as u32))
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sane_positive_amounts() {
        assert_eq!(Points::parse_positive(" 50 "), Ok(Points::new(50)));
        assert_eq!(
            Points::parse_positive("0"),
            Err(AmountError::NotPositive(0))
        );
        assert_eq!(
            Points::parse_positive("-5"),
            Err(AmountError::NotPositive(-5))
        );
        assert!(matches!(
            Points::parse_positive("1.5"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Points::parse_positive("1e9"),
            Err(AmountError::NotANumber(_))
        ));
        assert_eq!(
            Points::parse_positive("99999999999"),
            Err(AmountError::TooLarge(99_999_999_999))
        );
    }
}

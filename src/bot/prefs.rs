//! A user's bot preferences, stored in redb (`prefs:<user>` in the bot's table) as a versioned
//! record: today whether the weekly bonus notice is wanted.

use serde::{Deserialize, Serialize};

use crate::codec::{Versioned, decode, encode};
use crate::domain::UserId;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefs {
    pub weekly_notices: bool,
}

impl Default for Prefs {
    fn default() -> Self {
        Prefs {
            weekly_notices: true,
        }
    }
}

impl Versioned for Prefs {
    const NAME: &'static str = "prefs";
    const VERSION: u8 = 1;
}

fn key(user: UserId) -> String {
    format!("prefs:{user}")
}

impl Prefs {
    /// The user's preferences; none stored (or unreadable) means the defaults.
    pub fn load(store: &Store, user: UserId) -> Result<Prefs, StoreError> {
        Ok(store
            .bot_get(&key(user))?
            .and_then(|bytes| decode(&bytes).ok())
            .unwrap_or_default())
    }

    pub fn save(&self, store: &Store, user: UserId) -> Result<(), StoreError> {
        store.bot_put(&key(user), &encode(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_defaults_to_notices_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let user = UserId::new(7);
        assert!(Prefs::load(&store, user).unwrap().weekly_notices);
        Prefs {
            weekly_notices: false,
        }
        .save(&store, user)
        .unwrap();
        assert!(!Prefs::load(&store, user).unwrap().weekly_notices);
    }
}

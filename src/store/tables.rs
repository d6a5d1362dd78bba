//! Every redb table, typed. Values that are records are versioned bytes (see `codec`).

use redb::TableDefinition;

/// Schema bookkeeping: `schema_version`, `next_ledger_id`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Telegram user id → `UserRecord`.
pub const USERS: TableDefinition<i64, &[u8]> = TableDefinition::new("users");
/// Telegram user id → cached balance (always the sum of the user's ledger entries).
pub const BALANCES: TableDefinition<i64, i64> = TableDefinition::new("balances");
/// Ledger entry id (increasing) → `LedgerEntry`. Append-only.
pub const LEDGER: TableDefinition<u64, &[u8]> = TableDefinition::new("ledger");
/// (user, entry id) → (): a user's entries in order.
pub const LEDGER_BY_USER: TableDefinition<(i64, u64), ()> = TableDefinition::new("ledger_by_user");
/// Idempotency key → the ledger entry it produced. A key is applied at most once.
pub const IDEMPOTENCY: TableDefinition<&str, u64> = TableDefinition::new("idempotency");
/// Job id → `HoldRecord`.
pub const HOLDS: TableDefinition<u128, &[u8]> = TableDefinition::new("holds");
/// Job id → (): holds still in the `Held` state, scanned by reconciliation.
pub const OPEN_HOLDS: TableDefinition<u128, ()> = TableDefinition::new("open_holds");
/// Job id → the job's queue record, written with the hold and removed once the job is in the
/// queue: the intent that reconciliation rolls forward after a crash.
pub const INTENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("intents");
/// Provider payment id (`stars:<charge id>`, `yookassa:<id>`) → payment record.
pub const PAYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("payments");
/// Promocode (normalised) → promocode record.
pub const PROMOCODES: TableDefinition<&str, &[u8]> = TableDefinition::new("promocodes");
/// The bot's own state, as versioned records it encodes itself: `dialog:<chat>`,
/// `job:<job id>`, `offset`.
pub const BOT_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("bot_state");
/// (promocode, user) → (): who redeemed what, so a user redeems a code once.
pub const PROMO_REDEMPTIONS: TableDefinition<(&str, i64), ()> =
    TableDefinition::new("promo_redemptions");
/// Order id → `YooKassaOrderRecord` (the YooKassa payment paying it, its link).
pub const YOOKASSA_ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("yookassa_orders");
/// Telegram user id → the e-mail the user gave for receipts.
pub const CUSTOMER_EMAILS: TableDefinition<i64, &str> = TableDefinition::new("customer_emails");
/// Admin API `Idempotency-Key` → the stored request fingerprint and response (`ApiReplay`).
pub const API_REPLAYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_replays");

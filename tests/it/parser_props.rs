//! Every parser of outside input under wrong and arbitrary input (issue #8, "Bad input"):
//! config keys given the wrong type one at a time, and proptest over arbitrary text and bytes
//! for config files, button data and YooKassa notification bodies. None may panic; errors name
//! the key; valid encodings round-trip. (Upload checks: `uploads.rs`; Telegram updates of
//! unknown shapes: `bad_input.rs`.)

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use qwenedit::bot::Callback;
use qwenedit::config::{Config, ConfigError};
use qwenedit::yookassa::notification_payment_id;

fn example() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml");
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Where `from_toml` pretends the file is (relative paths resolve next to the example).
fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.toml")
}

fn parse(table: &toml::Table) -> Result<Config, ConfigError> {
    let text = toml::to_string(table).unwrap();
    Config::from_toml(&text, &example_path(), Vec::<(String, String)>::new())
}

/// Every `section.key` of the example config with its value.
fn example_keys() -> Vec<(String, String, toml::Value)> {
    let mut keys = Vec::new();
    for (section, body) in example() {
        let toml::Value::Table(body) = body else {
            panic!("top-level key {section} outside a section")
        };
        for (key, value) in body {
            keys.push((section.clone(), key, value));
        }
    }
    keys
}

/// Values of the wrong type for `value`: a different scalar and a table.
fn wrong_types(value: &toml::Value) -> Vec<toml::Value> {
    use toml::Value as V;
    let other = match value {
        V::String(_) => V::Integer(7),
        V::Integer(_) => V::String("seven".into()),
        V::Float(_) => V::String("seven".into()),
        V::Boolean(_) => V::String("yes".into()),
        V::Array(_) => V::Boolean(true),
        V::Table(_) | V::Datetime(_) => V::Integer(7),
    };
    let mut table = toml::Table::new();
    table.insert("nested".into(), V::Integer(1));
    vec![other, V::Table(table)]
}

/// The example config parses; then each of its keys in turn, given a value of the wrong type,
/// is refused with a one-line error that names that key.
#[test]
fn props_every_key_of_the_example_given_a_wrong_type_is_named() {
    parse(&example()).expect("the example parses");
    let keys = example_keys();
    assert!(keys.len() >= 35, "only {} keys found", keys.len());
    let mut unnamed = Vec::new();
    for (section, key, value) in keys {
        for wrong in wrong_types(&value) {
            let mut table = example();
            table[&section]
                .as_table_mut()
                .unwrap()
                .insert(key.clone(), wrong.clone());
            let name = format!("{section}.{key}");
            match parse(&table) {
                Ok(_) => unnamed.push(format!("{name} = {wrong} was accepted")),
                Err(e) => {
                    let text = e.to_string();
                    if !text.contains(&format!("`{name}")) || text.contains('\n') {
                        unnamed.push(format!("{name} = {wrong}: {text}"));
                    }
                }
            }
        }
    }
    assert!(unnamed.is_empty(), "{}", unnamed.join("\n"));
}

/// A key nobody knows, in every section, is refused by name (typos do not pass silently).
#[test]
fn props_an_unknown_key_in_any_section_is_named() {
    for section in example().keys() {
        let mut table = example();
        table[section]
            .as_table_mut()
            .unwrap()
            .insert("no_such_key".into(), toml::Value::Integer(1));
        let err = parse(&table).expect_err(section).to_string();
        assert!(
            err.contains(section) && err.contains("no_such_key"),
            "{section}: {err}"
        );
    }
}

fn any_toml_value() -> impl Strategy<Value = toml::Value> {
    use toml::Value as V;
    let leaf = prop_oneof![
        any::<i64>().prop_map(V::Integer),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(V::Float),
        any::<bool>().prop_map(V::Boolean),
        ".{0,40}".prop_map(V::String),
        prop::sample::select(vec![
            "",
            "0",
            "-1",
            "0s",
            "99999999999999d",
            "1e9ms",
            "http://",
            "http://[::1",
            "::",
            "25:61",
            "mon",
            "EUROPE/Nowhere",
            "127.0.0.1:99999",
            "../../..",
            "\u{0}",
        ])
        .prop_map(|s| V::String(s.into())),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(V::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..3)
                .prop_map(|m| V::Table(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary text as a config file: an error or a config, never a panic.
    #[test]
    fn props_arbitrary_config_text_never_panics(text in "(?s).{0,300}") {
        let _ = Config::from_toml(&text, &example_path(), Vec::<(String, String)>::new());
    }

    /// Arbitrary values for the example's keys, a few at a time: never a panic, and an error
    /// always names a key (or is about the file).
    #[test]
    fn props_arbitrary_values_for_known_keys_never_panic(
        picks in prop::collection::vec((any::<prop::sample::Index>(), any_toml_value()), 1..4)
    ) {
        let keys = example_keys();
        let mut table = example();
        for (index, value) in picks {
            let (section, key, _) = index.get(&keys);
            table[section].as_table_mut().unwrap().insert(key.clone(), value);
        }
        if let Err(e) = parse(&table) {
            let named = matches!(e, ConfigError::Key { ref key, .. } if !key.is_empty());
            prop_assert!(named || matches!(e, ConfigError::Read { .. }), "{e}");
        }
    }

    /// Arbitrary text as button data: decoded or refused, never a panic; what decodes encodes
    /// back within Telegram's 64 bytes to data that decodes the same.
    #[test]
    fn props_callback_data_decodes_safely_and_round_trips(
        tag in prop::sample::select(vec![
            "m", "cats", "c", "p", "own", "two", "prof", "help", "ok", "chg", "x", "cj", "f",
            "a", "s", "e", "r", "rec", "pay", "promo", "top", "l", "xtr", "wn", "yk", "ykc", "",
        ]),
        rest in "(?s).{0,80}",
        bytes in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for data in [format!("{tag}:{rest}"), format!("{tag}{rest}"), rest.clone(), lossy] {
            if let Some(cb) = Callback::decode(&data) {
                prop_assert!(data.len() <= 64, "{data:?} over 64 bytes decoded");
                let again = cb.encode();
                prop_assert!(!again.is_empty() && again.len() <= 64, "{cb:?} -> {again:?}");
                prop_assert_eq!(Callback::decode(&again), Some(cb));
            }
        }
    }

    /// Valid button data from its parts round-trips exactly.
    #[test]
    fn props_valid_callback_data_round_trips(
        nonce in any::<u32>(),
        pack in any::<u8>(),
        key in "[a-z][a-z0-9_-]{0,30}",
        job in any::<u128>(),
    ) {
        let job = ulid::Ulid(job).to_string();
        for data in [
            format!("ok:{nonce}"),
            format!("xtr:{pack}"),
            format!("yk:{pack}"),
            format!("p:{key}"),
            format!("cj:{job}"),
            format!("r:{job}"),
            format!("ykc:{job}"),
        ] {
            let cb = Callback::decode(&data);
            if let Some(cb) = cb {
                prop_assert_eq!(cb.encode(), data);
            } else {
                // Only preset keys have extra rules (length, reserved names).
                prop_assert!(data.starts_with("p:"), "{data:?} refused");
            }
        }
    }

    /// Arbitrary bytes as a YooKassa notification body: a payment id or nothing, never a panic.
    #[test]
    fn props_arbitrary_webhook_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = notification_payment_id(&bytes);
    }

    /// A well-formed notification gives its id exactly when the id looks like YooKassa's.
    #[test]
    fn props_webhook_ids_are_taken_only_when_plausible(id in "(?s).{0,80}") {
        let body = serde_json::json!({
            "type": "notification",
            "event": "payment.succeeded",
            "object": { "id": id, "status": "succeeded", "paid": true },
        });
        let got = notification_payment_id(body.to_string().as_bytes());
        let plausible = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(got, plausible.then(|| id.clone()));
    }
}

//! Bad input the other suites do not cover: awkward prompts through the bot (1 and 5,000
//! characters, control characters, RTL marks, emoji, SQL/shell/markup injection) and arbitrary
//! bytes into the config parser. Each gets a clear answer; nothing panics; nothing is charged.

use proptest::prelude::*;

use crate::support::bot::{BotTest, Setup, jpeg};

const USER: i64 = 4242;

/// Each prompt: the answer must contain `expect` (the confirm card shows the cleaned prompt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_prompts_get_a_clear_answer_and_cost_nothing() {
    let b = BotTest::with(Setup::default().no_comfy()).await;
    let long = "a".repeat(5_000);
    let cases: Vec<(String, &str)> = vec![
        ("x".into(), "too short"),
        (long, "too long"),
        ("\u{0}\u{7}\u{1b}[31m".into(), "too short"),
        (
            "make\u{0}the\u{7}sky\u{1b}purple".into(),
            "Own prompt: \"make the sky purple\"",
        ),
        (
            "\u{202e}\u{200f}сделай небо фиолетовым\u{200e}".into(),
            "сделай небо фиолетовым",
        ),
        ("🌅🌅🌅 sunset 🌅🌅🌅".into(), "🌅🌅🌅 sunset 🌅🌅🌅"),
        ("'; DROP TABLE users; --".into(), "'; DROP TABLE users; --"),
        (
            "$(rm -rf /) `id` && echo".into(),
            "$(rm -rf /) `id` && echo",
        ),
        (
            "<b>bold</b> <script>alert(1)</script> *md* _x_ [a](http://x)".into(),
            "<script>alert(1)</script>",
        ),
    ];
    for (i, (prompt, expect)) in cases.into_iter().enumerate() {
        // A user per prompt, each from /start.
        let user = USER + i as i64;
        b.tg.set_language(user, "en");
        b.say(user, "/start").await;
        b.press_key(user, "en", "menu-own").await;
        b.photo(user, jpeg(64, 48)).await;
        let mark = b.mark(user);
        b.say(user, &prompt).await;
        let answer =
            b.tg.messages(user)
                .into_iter()
                .filter(|m| m.id > mark)
                .map(|m| m.text)
                .collect::<Vec<_>>()
                .join("\n");
        assert!(
            answer.contains(expect),
            "prompt {:?}: expected {expect:?} in\n{answer}",
            prompt.chars().take(40).collect::<String>()
        );
        assert_eq!(b.balance(user), 60, "nothing charged");
    }
    b.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes as a config file: an error naming what is wrong, or a config; never a
    /// panic.
    #[test]
    fn arbitrary_config_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let path = std::path::Path::new("/nonexistent/config.toml");
        let _ = qwenedit::config::Config::from_toml(&text, path, std::iter::empty());
    }

    /// Config-shaped text with arbitrary keys and values in the known sections.
    #[test]
    fn arbitrary_config_values_never_panic(
        section in prop::sample::select(vec!["telegram", "storage", "comfyui", "web", "billing", "queue", "presets", "log"]),
        key in "[a-z_]{1,20}",
        value in prop_oneof![
            "-?[0-9]{1,25}",
            "\"[^\"\\\\]{0,30}\"",
            Just("true".to_string()),
            Just("[]".to_string()),
            Just("[1, \"x\"]".to_string()),
            Just("{ a = 1 }".to_string()),
            "-?[0-9]{1,5}\\.[0-9]{1,5}",
        ],
    ) {
        let text = format!("[{section}]\n{key} = {value}\n");
        let path = std::path::Path::new("/nonexistent/config.toml");
        let _ = qwenedit::config::Config::from_toml(&text, path, std::iter::empty());
    }
}

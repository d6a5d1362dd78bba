//! The status page and its JSON twin against a seeded app: snapshots (sizes normalised), what
//! must never appear on them, and the admin token when not bound to loopback.

use secrecy::ExposeSecret;

use crate::support::web::WebApp;

/// One tag per line, sizes (which depend on the file system) replaced.
fn normalise(html: &str) -> String {
    regex_lite_sizes(&html.replace("><", ">\n<"))
}

/// Replaces `12.3 MiB`, `512 B` and the like with `[size]`.
fn regex_lite_sizes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let units = [" B", " KiB", " MiB", " GiB", " TiB"];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let c = bytes[i];
        let starts_number = c.is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if starts_number {
            let mut j = i;
            while j < text.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                j += 1;
            }
            if let Some(u) = units.iter().find(|u| text[j..].starts_with(*u)) {
                let end = j + u.len();
                let boundary = text[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric());
                if boundary {
                    out.push_str("[size]");
                    i = end;
                    continue;
                }
            }
            out.push_str(&text[i..j]);
            i = j;
            continue;
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_seeded_day() {
    let w = WebApp::start("").await;
    w.seed();
    let page = w.text("/").await;
    insta::assert_snapshot!("status_page", normalise(&page));
    // The refreshing part is the page's <main>.
    let live = w.text("/status/live").await;
    assert!(page.contains(&live), "the fragment is what the page embeds");

    // No prompts, no files, no secrets.
    for private in [
        "a private prompt",
        "inputs/seed-",
        "results/",
        w.app.admin_token.expose_secret(),
    ] {
        assert!(!page.contains(private), "{private:?} is on the page");
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_json_is_the_same_view() {
    let w = WebApp::start("").await;
    w.seed();
    let mut json: serde_json::Value = w.get("/api/status").await.json().await.unwrap();
    for key in [
        "store_bytes",
        "queue_bytes",
        "disk_free_bytes",
        "disk_total_bytes",
    ] {
        assert!(json["storage"][key].is_u64(), "{key}");
        json["storage"][key] = "[size]".into();
    }
    insta::assert_json_snapshot!("status_json", json);
    assert!(!json.to_string().contains("private prompt"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_service_has_a_calm_page() {
    let w = WebApp::start("").await;
    let page = w.text("/").await;
    assert!(page.contains("Nothing queued or running."), "{page}");
    assert!(page.contains("No finished jobs yet."));
    assert!(page.contains("No payments in the last 7 days."));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_operator_pages_need_the_admin_token() {
    let token = "operator-token-0123456789";
    let w = WebApp::start(&format!(
        "[web]\nlisten = \"0.0.0.0:8080\"\nadmin_token = \"{token}\"\n"
    ))
    .await;
    let client = reqwest::Client::new();
    for path in ["/", "/status/live", "/api/status", "/metrics"] {
        let r = w.get(path).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"qwenedit\"",
            "a browser asks for the token"
        );
        let wrong = client
            .get(w.url(path))
            .basic_auth("admin", Some("not-the-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let basic = client
            .get(w.url(path))
            .basic_auth("anyone", Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 200, "{path}");
        let bearer = client
            .get(w.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(bearer.status(), 200, "{path}");
    }
    assert_eq!(w.get("/healthz").await.status(), 200, "health stays open");
    w.stop().await;
}

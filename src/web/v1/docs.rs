//! The API reference page, rendered on the server from the OpenAPI spec: plain HTML with a
//! little inline CSS, no scripts, nothing fetched, so it works on an offline workstation.

use std::fmt::Write;

use serde_json::Value;

use crate::web::error::CODES;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes and turns `code` spans into `<code>`.
fn text(s: &str) -> String {
    esc(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

fn anchor(method: &str, path: &str) -> String {
    let mut a = format!("{method}-");
    for c in path.chars() {
        a.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    a
}

/// A schema in a few words: `UserPage`, `array of JobView`, `integer (int64)`.
fn type_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    if let Some(all) = schema.get("oneOf").or_else(|| schema.get("allOf")) {
        let parts: Vec<String> = all
            .as_array()
            .into_iter()
            .flatten()
            .map(type_name)
            .filter(|t| t != "null")
            .collect();
        return parts.join(" or ");
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => String::new(),
    };
    if ty == "array" {
        let item = schema.get("items").map(type_name).unwrap_or_default();
        return format!("array of {item}");
    }
    match schema.get("format").and_then(Value::as_str) {
        Some(f) => format!("{} ({})", esc(&ty), esc(f)),
        None if ty.is_empty() => "any".to_string(),
        None => esc(&ty),
    }
}

fn nullable(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
        _ => schema
            .get("oneOf")
            .and_then(Value::as_array)
            .is_some_and(|v| {
                v.iter()
                    .any(|s| s.get("type") == Some(&Value::from("null")))
            }),
    }
}

fn properties_table(out: &mut String, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        let _ = writeln!(out, "<p>{}</p>", type_name(schema));
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str(
        "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>\n",
    );
    for (name, p) in props {
        let desc = p.get("description").and_then(Value::as_str).unwrap_or("");
        let deprecated = if p.get("deprecated") == Some(&Value::Bool(true)) {
            " (deprecated)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}{}</td><td>{}</td><td>{}{}</td></tr>",
            esc(name),
            type_name(p),
            if nullable(p) { ", may be null" } else { "" },
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            text(desc),
            deprecated,
        );
    }
    out.push_str("</table>\n");
}

fn content_line(content: &Value) -> String {
    content
        .as_object()
        .into_iter()
        .flatten()
        .map(|(ct, media)| {
            let schema = media.get("schema").map(type_name).unwrap_or_default();
            if schema.is_empty() {
                format!("<code>{}</code>", esc(ct))
            } else {
                format!("<code>{}</code>: {schema}", esc(ct))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The whole page.
pub fn render(spec: &utoipa::openapi::OpenApi) -> String {
    let spec = serde_json::to_value(spec).unwrap_or(Value::Null);
    let info = &spec["info"];
    let title = info["title"].as_str().unwrap_or("API");
    let base = spec["servers"][0]["url"].as_str().unwrap_or("");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{CSS}</style></head><body>\n<h1>{t} <small>{v}</small></h1>\n\
         <p>{d}</p>\n<p>Machine-readable: <a href=\"{b}/openapi.json\">{b}/openapi.json</a> \
         (OpenAPI {o}).</p>\n",
        t = esc(title),
        v = esc(info["version"].as_str().unwrap_or("")),
        d = text(info["description"].as_str().unwrap_or("")),
        b = esc(base),
        o = esc(spec["openapi"].as_str().unwrap_or("")),
    );

    // Contents, by tag in the spec's order.
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    let mut ops: Vec<(String, String, String, Value)> = Vec::new();
    for (path, item) in &paths {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                let tag = op["tags"][0].as_str().unwrap_or("other").to_string();
                ops.push((tag, m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    let tags: Vec<String> = spec["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect();
    out.push_str("<h2>Operations</h2>\n<ul class=\"toc\">\n");
    for tag in &tags {
        let _ = write!(out, "<li><b>{}</b>: ", esc(tag));
        let links: Vec<String> = ops
            .iter()
            .filter(|o| &o.0 == tag)
            .map(|(_, m, p, _)| {
                format!(
                    "<a href=\"#{}\">{} {}</a>",
                    anchor(m, p),
                    m.to_uppercase(),
                    esc(p)
                )
            })
            .collect();
        out.push_str(&links.join(" · "));
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");

    out.push_str("<h2>Errors</h2>\n<p>Every error is JSON <code>{\"code\": \"...\", \"message\": \"...\"}</code>. \
        Codes are stable; messages are for people and may change.</p>\n\
        <table><tr><th>code</th><th>status</th><th>meaning</th></tr>\n");
    for (code, status, meaning) in CODES {
        let _ = writeln!(
            out,
            "<tr><td><code>{code}</code></td><td>{status}</td><td>{}</td></tr>",
            text(meaning)
        );
    }
    out.push_str("</table>\n");

    for tag in &tags {
        let _ = writeln!(out, "<h2 id=\"tag-{0}\">{0}</h2>", esc(tag));
        for (_, m, path, op) in ops.iter().filter(|o| &o.0 == tag) {
            render_operation(&mut out, m, path, base, op);
        }
    }

    out.push_str("<h2>Schemas</h2>\n");
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = writeln!(out, "<h3 id=\"schema-{0}\">{0}</h3>", esc(name));
            if let Some(d) = schema.get("description").and_then(Value::as_str) {
                let _ = writeln!(out, "<p>{}</p>", text(d));
            }
            properties_table(&mut out, schema);
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn render_operation(out: &mut String, method: &str, path: &str, base: &str, op: &Value) {
    let public = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .all(|x| x.as_object().is_some_and(|o| o.is_empty()))
        });
    let _ = writeln!(
        out,
        "<section class=\"op\" id=\"{}\"><h3><span class=\"m {method}\">{}</span> <code>{}{}</code>{}</h3>",
        anchor(method, path),
        method.to_uppercase(),
        esc(base),
        esc(path),
        if public {
            " <small>no token</small>"
        } else {
            ""
        },
    );
    if let Some(s) = op.get("summary").and_then(Value::as_str) {
        let _ = writeln!(out, "<p>{}</p>", text(s));
    }
    if let Some(d) = op.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "<p>{}</p>", text(d));
    }
    if let Some(params) = op.get("parameters").and_then(Value::as_array) {
        out.push_str("<h4>Parameters</h4>\n<table><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>\n");
        for p in params {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                p.get("schema").map(type_name).unwrap_or_default(),
                if p["required"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                },
                text(p["description"].as_str().unwrap_or("")),
            );
        }
        out.push_str("</table>\n");
    }
    if let Some(body) = op.get("requestBody") {
        let _ = writeln!(
            out,
            "<h4>Body</h4>\n<p>{}{}</p>",
            content_line(&body["content"]),
            body["description"]
                .as_str()
                .map(|d| format!(" — {}", text(d)))
                .unwrap_or_default()
        );
    }
    out.push_str(
        "<h4>Responses</h4>\n<table><tr><th>status</th><th>description</th><th>body</th></tr>\n",
    );
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        for (status, r) in responses {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(status),
                text(r["description"].as_str().unwrap_or("")),
                content_line(&r["content"]),
            );
        }
    }
    out.push_str("</table></section>\n");
}

const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}\
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}\
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#fafafa}.op{border-top:1px solid #ccc;margin-top:1.5rem}\
.m{font-family:monospace;padding:0 .4em;border-radius:3px;color:#fff;background:#555}\
.m.get{background:#2a7}.m.post{background:#27c}h1 small,h3 small{color:#888;font-weight:normal}\
.toc li{margin:.3rem 0}";

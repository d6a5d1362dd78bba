//! `QWENEDIT_<SECTION>__<KEY>=value` overrides. A value is read as TOML when it parses as one
//! (numbers, booleans, arrays such as `["http://a:8188","http://b:8188"]`), else as a string.

use super::ConfigError;

const PREFIX: &str = "QWENEDIT_";

pub fn apply_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            // QWENEDIT_CONFIG and similar are not overrides.
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if section.is_empty() || key.is_empty() {
            return Err(ConfigError::key(
                name,
                "an override is named QWENEDIT_<SECTION>__<KEY>",
            ));
        }
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(ConfigError::key(section, "must be a table"));
        };
        section_table.insert(key, parse_value(&value));
    }
    Ok(())
}

fn parse_value(text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    match toml::from_str::<toml::Table>(&doc) {
        // Dates and times stay text: the typed config parses them itself.
        Ok(mut t) => match t.remove("v") {
            Some(toml::Value::Datetime(_)) | None => toml::Value::String(text.to_string()),
            Some(v) => v,
        },
        Err(_) => toml::Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml_when_they_parse_and_strings_otherwise() {
        assert_eq!(parse_value("42"), toml::Value::Integer(42));
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(
            parse_value("http://127.0.0.1:8188"),
            toml::Value::String("http://127.0.0.1:8188".into())
        );
        assert!(matches!(parse_value(r#"["a","b"]"#), toml::Value::Array(a) if a.len() == 2));
        assert_eq!(parse_value("12:30"), toml::Value::String("12:30".into()));
    }
}

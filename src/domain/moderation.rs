//! Prompt rules: a deny-list against sexualised edits of real people and similar abuse, matched
//! after normalising case, look-alike letters (Latin/Cyrillic/digits) and spacing, so "Н u d e",
//! "nUdE" and "н-у-д" all meet the same term.

/// Built-in terms (ru and en). Operators add more with `telegram.deny_list`.
pub const BUILTIN: &[&str] = &[
    "nude",
    "naked",
    "undress",
    "nsfw",
    "topless",
    "nipple",
    "porn",
    "sexy lingerie",
    "remove clothes",
    "take off clothes",
    "without clothes",
    "no clothes",
    "see through clothes",
    "bikini on child",
    "child sexual",
    "deepfake",
    "голая",
    "голый",
    "голые",
    "голой",
    "голую",
    "голого",
    "голыми",
    "обнаж",
    "раздень",
    "раздеть",
    "раздеваться",
    "без одежды",
    "сними одежду",
    "снять одежду",
    "порно",
    "эротик",
    "интим",
    "соски",
    "ню ",
];

/// Maps look-alike characters to one canonical Latin form and drops everything that is not a
/// letter or digit (spaces, dashes, dots, emoji), lowercased.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let mapped = match c {
            // Cyrillic letters that look like Latin ones.
            'а' => 'a',
            'в' => 'b',
            'е' | 'ё' => 'e',
            'к' => 'k',
            'м' => 'm',
            'н' => 'h',
            'о' => 'o',
            'р' => 'p',
            'с' => 'c',
            'т' => 't',
            'у' => 'y',
            'х' => 'x',
            'і' => 'i',
            // Digits and symbols used as letters.
            '0' => 'o',
            '1' | '!' | '|' => 'i',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            c if c.is_alphanumeric() => c,
            _ => continue,
        };
        out.push(mapped);
    }
    out
}

/// A compiled deny-list.
#[derive(Clone, Debug)]
pub struct DenyList {
    terms: Vec<(String, String)>,
}

impl DenyList {
    /// The built-in terms plus `extra` (one per line; `#` starts a comment).
    pub fn new(extra: &str) -> Self {
        let mut terms: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|t| t.to_string())
            .chain(
                extra
                    .lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
                    .filter(|l| !l.is_empty()),
            )
            .map(|t| (normalize(&t), t))
            .filter(|(n, _)| n.chars().count() >= 3)
            .collect();
        terms.sort();
        terms.dedup_by(|a, b| a.0 == b.0);
        Self { terms }
    }

    /// The first term the text contains, as written in the list.
    pub fn check(&self, text: &str) -> Option<&str> {
        let n = normalize(text);
        self.terms
            .iter()
            .find(|(term, _)| n.contains(term.as_str()))
            .map(|(_, original)| original.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_disguised_terms() {
        let d = DenyList::new("");
        for bad in [
            "make her n u d e",
            "NuDe please",
            "Сделай её г-о-л-о-й",
            "make them nak3d",
            "r3move cl0thes",
            "РАЗДЕНЬ его",
        ] {
            assert!(d.check(bad).is_some(), "{bad}");
        }
        for fine in [
            "make the sky purple",
            "добавь шляпу",
            "sunset lighting",
            "сделай фон белым",
            "a striped shirt",
            "draw it as a comic strip",
        ] {
            assert_eq!(d.check(fine), None, "{fine}");
        }
    }

    #[test]
    fn operator_terms_are_added() {
        let d = DenyList::new("# brands\nacme logo\n");
        assert_eq!(d.check("put the ACME-logo on it"), Some("acme logo"));
    }
}

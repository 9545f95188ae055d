//! Never-panic property of the site config loader: `Config::from_text` on arbitrary text and on
//! the shipped example mutated (lines dropped, duplicated or swapped, characters replaced, values
//! replaced by other TOML values) returns `Ok` or a `ConfigError`, and every error names the
//! file. `PROPTEST_CASES` scales it (scripts/soak runs it with many more cases).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

use std::path::Path;

use kiosk::config::Config;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../config/site.example.toml");

fn load(text: &str) -> Result<(), String> {
    match Config::from_text(Path::new("/etc/kiosk/site.toml"), text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let shown = e.to_string();
            if shown.contains("site.toml") {
                Ok(())
            } else {
                Err(shown)
            }
        }
    }
}

/// A value that may replace the right-hand side of a `key = value` line.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "\"[ -~]{0,40}\"",
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"25:99\"".to_owned()),
        Just("\"0.0.0.0:0\"".to_owned()),
        Just("\"http://[::1\"".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("-1".to_owned()),
        Just("\"\"".to_owned()),
        "[ -~]{0,20}",
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Replace(usize, String),
    Byte(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Drop),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (any::<usize>(), toml_value()).prop_map(|(a, v)| Edit::Replace(a, v)),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Edit::Byte(a, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Drop(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::Replace(i, v) if !lines.is_empty() => {
                let l = &mut lines[i % n];
                if let Some(eq) = l.find('=') {
                    l.truncate(eq + 1);
                    l.push(' ');
                    l.push_str(v);
                }
            }
            Edit::Byte(i, c) if !lines.is_empty() => {
                let l = &mut lines[i % n];
                let mut chars: Vec<char> = l.chars().collect();
                let at = i % (chars.len() + 1);
                if at < chars.len() {
                    chars[at] = *c;
                } else {
                    chars.push(*c);
                }
                *l = chars.into_iter().collect();
            }
            _ => {}
        }
    }
    lines.join("\n")
}

#[test]
fn the_shipped_example_loads() {
    Config::from_text(Path::new("site.toml"), EXAMPLE).unwrap();
}

proptest! {
    #[test]
    fn arbitrary_text_is_a_config_or_a_located_error_never_a_panic(text in any::<String>()) {
        prop_assert_eq!(load(&text), Ok(()));
    }

    #[test]
    fn the_example_mutated_is_a_config_or_a_located_error_never_a_panic(
        edits in prop::collection::vec(edit(), 1..6)
    ) {
        let text = apply(EXAMPLE, &edits);
        prop_assert_eq!(load(&text), Ok(()), "config:\n{}", text);
    }
}

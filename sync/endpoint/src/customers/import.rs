//! The customer CSV import (issue 21 item 3): existing customers with their card numbers, each
//! number tokenized on the way in with the tenant key exactly as a kiosk's reader does
//! (`kiosk_drivers::card::Uid::parse`, then HMAC with the tenant key); the number itself is
//! never stored, logged or echoed in an error. Every row is checked first, with the same rules as
//! `POST /v1/admin/customers` ([`NewCustomer`]'s deserializers); one bad row refuses the whole
//! file with every bad row's line, column and reason, and a good file is written in one
//! transaction ([`crate::db::Database::import_customers`]): nothing is ever half-imported.
//!
//! Columns (a header row; order free; unknown columns refused): `card_number` or `card_token`
//! (one of them), `card_format` (`hex` or `decimal`, default the import's), `store_id`,
//! `display_name`, `email`, `phone`, `locale` (`es`/`en`, default `es`), `consents` (purposes
//! separated by spaces or `;`), `segment`, `visits`.

use std::collections::{BTreeMap, BTreeSet};

use kiosk_drivers::card::Uid;
use kiosk_drivers::card::settings::UidFormat;
use kiosk_protocol::CardToken;
use kiosk_protocol::wire::TenantKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::NewCustomer;

/// Most rows one import takes.
pub const MAX_ROWS: usize = 50_000;

const COLUMNS: &[&str] = &[
    "card_number",
    "card_token",
    "card_format",
    "store_id",
    "display_name",
    "email",
    "phone",
    "locale",
    "consents",
    "segment",
    "visits",
];

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RowError {
    /// Line of the file (the header is line 1).
    pub line: u64,
    /// The column at fault (absent: the row as a whole).
    pub column: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// Checks and converts every row; every problem found, or the customers to import.
pub fn parse(
    text: &str,
    default_format: UidFormat,
    key: &TenantKey,
    stores: &BTreeSet<String>,
) -> Result<Vec<NewCustomer>, Vec<RowError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let whole = |message: String| {
        vec![RowError {
            line: 1,
            column: None,
            message,
        }]
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_lowercase).collect(),
        Err(e) => return Err(whole(format!("the header row is not CSV: {e}"))),
    };
    if header.iter().all(String::is_empty) {
        return Err(whole(
            "the file is empty; the first row names the columns".into(),
        ));
    }
    let mut errors = Vec::new();
    for h in &header {
        if !COLUMNS.contains(&h.as_str()) {
            errors.push(RowError {
                line: 1,
                column: Some(h.clone()),
                message: format!("unknown column; the columns are {}", COLUMNS.join(", ")),
            });
        }
    }
    let has = |c: &str| header.iter().any(|h| h == c);
    if !has("card_number") && !has("card_token") {
        errors.push(RowError {
            line: 1,
            column: None,
            message: "a card_number (or card_token) column is needed".into(),
        });
    }
    for needed in ["store_id", "display_name"] {
        if !has(needed) {
            errors.push(RowError {
                line: 1,
                column: Some(needed.into()),
                message: "this column is needed".into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = Vec::new();
    let mut first_line: BTreeMap<CardToken, u64> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(2);
        if out.len() + errors.len() >= MAX_ROWS {
            errors.push(RowError {
                line,
                column: None,
                message: format!("more than {MAX_ROWS} rows; split the file"),
            });
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    column: None,
                    message: format!("not a CSV row of {} fields: {e}", header.len()),
                });
                continue;
            }
        };
        let cells: BTreeMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .collect();
        match row(&cells, default_format, key, stores) {
            Ok(c) => {
                if let Some(first) = first_line.insert(c.card_token.clone(), line) {
                    errors.push(RowError {
                        line,
                        column: Some("card_number".into()),
                        message: format!("the same card as line {first}; keep one row per card"),
                    });
                } else {
                    out.push(c);
                }
            }
            Err((column, message)) => errors.push(RowError {
                line,
                column,
                message,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(whole("the file has no customer rows".into()));
    }
    Ok(out)
}

type CellError = (Option<String>, String);

fn row(
    cells: &BTreeMap<&str, &str>,
    default_format: UidFormat,
    key: &TenantKey,
    stores: &BTreeSet<String>,
) -> Result<NewCustomer, CellError> {
    let col = |c: &str, m: String| (Some(c.to_owned()), m);
    let token = match (cells.get("card_number"), cells.get("card_token")) {
        (Some(_), Some(_)) => {
            return Err(col(
                "card_token",
                "give card_number or card_token, not both".into(),
            ));
        }
        (Some(number), None) => {
            let format = match cells.get("card_format") {
                None => default_format,
                Some(&"hex") => UidFormat::Hex,
                Some(&"decimal") => UidFormat::Decimal,
                Some(_) => {
                    return Err(col("card_format", "write hex or decimal".into()));
                }
            };
            // The reader's own parser: the error never repeats the number.
            Uid::parse(number, format)
                .map_err(|e| col("card_number", format!("not a card number: {e}")))?
                .token(key)
        }
        (None, Some(t)) => t
            .parse()
            .map_err(|e| col("card_token", format!("not a card token: {e}")))?,
        (None, None) => {
            return Err(col(
                "card_number",
                "empty; every row needs its card's number".into(),
            ));
        }
    };
    let mut obj = Map::new();
    obj.insert("card_token".into(), Value::String(token.to_string()));
    for c in [
        "store_id",
        "display_name",
        "email",
        "phone",
        "locale",
        "segment",
    ] {
        if let Some(v) = cells.get(c) {
            obj.insert(c.into(), Value::String((*v).to_owned()));
        }
    }
    if let Some(v) = cells.get("consents") {
        let purposes = v
            .split([' ', ';', ','])
            .filter(|p| !p.is_empty())
            .map(|p| Value::String(p.to_owned()))
            .collect();
        obj.insert("consents".into(), Value::Array(purposes));
    }
    if let Some(v) = cells.get("visits") {
        let n: i64 = v
            .parse()
            .map_err(|_| col("visits", format!("{v:?} is not a whole number")))?;
        obj.insert("visits".into(), Value::from(n));
    }
    let customer: NewCustomer =
        serde_path_to_error::deserialize(Value::Object(obj)).map_err(|e| {
            let path = e.path().to_string();
            let column = path.split(['.', '[']).next().unwrap_or("").to_owned();
            let column = if column.is_empty() || column == "?" {
                None
            } else {
                Some(column)
            };
            (column, e.into_inner().to_string())
        })?;
    if !stores.contains(&customer.store_id) {
        return Err(col(
            "store_id",
            format!(
                "no store {:?}; create it first or use an existing store's id",
                customer.store_id
            ),
        ));
    }
    Ok(customer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn stores() -> BTreeSet<String> {
        BTreeSet::from(["north".to_owned()])
    }

    #[test]
    fn card_numbers_are_tokenized_as_a_kiosk_reader_does() {
        let key = TenantKey::from_bytes([7; 32]);
        let csv = "card_number,store_id,display_name,email,consents,visits\n\
                   04:A1:B2:C3,north,Ana,ana@example.com,profile marketing_email,4\n";
        let got = parse(csv, UidFormat::Hex, &key, &stores()).unwrap();
        assert_eq!(got[0].card_token, key.card_token(&[0x04, 0xa1, 0xb2, 0xc3]));
        assert_eq!(got[0].consents, ["profile", "marketing_email"]);
        assert_eq!(got[0].visits, 4);
        let dec = "card_number,card_format,store_id,display_name\n0012345678,decimal,north,Bea\n";
        let got = parse(dec, UidFormat::Hex, &key, &stores()).unwrap();
        assert_eq!(
            got[0].card_token,
            key.card_token(&12_345_678u32.to_be_bytes())
        );
    }

    #[test]
    fn every_bad_row_is_named_with_its_line_and_column_and_no_card_number_is_echoed() {
        let key = TenantKey::from_bytes([7; 32]);
        let csv = "card_number,store_id,display_name,email\n\
                   04A1B2C3,north,Ana,ana@example.com\n\
                   ZZ99,north,Bea,\n\
                   04A1B2C3,north,Ana again,\n\
                   0A0B,south,Cris,\n\
                   0C0D,north,Dani,not-an-email\n";
        let errs = parse(csv, UidFormat::Hex, &key, &stores()).unwrap_err();
        let got: Vec<(u64, Option<&str>)> =
            errs.iter().map(|e| (e.line, e.column.as_deref())).collect();
        assert_eq!(
            got,
            [
                (3, Some("card_number")),
                (4, Some("card_number")),
                (5, Some("store_id")),
                (6, Some("email")),
            ],
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| !e.message.contains("ZZ99")), "{errs:?}");
        let unknown = parse("card,store_id\n1,north\n", UidFormat::Hex, &key, &stores());
        assert_eq!(unknown.unwrap_err()[0].column.as_deref(), Some("card"));
    }
}

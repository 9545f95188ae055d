//! A report's tables as CSV: RFC 4180 (fields with a comma, quote, CR or LF quoted, quotes
//! doubled, CRLF line ends), UTF-8 with a byte order mark (so that a spreadsheet opening the file
//! reads accents right) and a header row. A text cell starting with `=`, `+`, `-`, `@`, a tab or a
//! CR is prefixed with `'` (OWASP's guard against CSV formula injection: a store, campaign or
//! counter name is never run as a formula); numbers the report computed are written as they are
//! (an NPS of `-20` stays a number).
//!
//! The quoting is the `csv` crate's (RFC 4180 with CRLF terminators); the guard is ours.

use crate::db::dashboard::Durations;
use crate::db::report::Report;

/// The byte order mark opening every file.
pub const BOM: &str = "\u{feff}";

/// A cell: text (guarded) or a number (as is).
enum Cell {
    Text(String),
    Num(String),
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn int(n: u64) -> Cell {
    Cell::Num(n.to_string())
}

fn secs(s: Option<f64>) -> Cell {
    Cell::Num(s.map(|s| format!("{s:.1}")).unwrap_or_default())
}

/// `value` guarded when it is text that a spreadsheet would run.
fn guard(value: &str, is_text: bool) -> String {
    if is_text && value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// One record, quoted as RFC 4180 says (only the fields that need it), CRLF-terminated.
fn record(cells: impl IntoIterator<Item = String>) -> String {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .quote_style(::csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    // Writing to memory cannot fail; a field the writer refused would only shorten the row.
    let _ = w.write_record(cells.into_iter().collect::<Vec<_>>());
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// `value` as one CSV field: guarded when it is text that a spreadsheet would run, quoted when
/// it needs to be.
pub fn field(value: &str, is_text: bool) -> String {
    record([guard(value, is_text)])
        .trim_end_matches("\r\n")
        .to_owned()
}

fn write(head: &[&str], rows: Vec<Vec<Cell>>) -> String {
    let mut out = String::from(BOM);
    out.push_str(&record(head.iter().map(|h| guard(h, true))));
    for row in rows {
        out.push_str(&record(row.into_iter().map(|c| match c {
            Cell::Text(s) => guard(&s, true),
            Cell::Num(s) => guard(&s, false),
        })));
    }
    out
}

fn median(d: &Option<Durations>) -> Cell {
    secs(d.as_ref().map(|d| d.median_s))
}

fn p90(d: &Option<Durations>) -> Cell {
    secs(d.as_ref().map(|d| d.p90_s))
}

/// The queue table: tickets, waits, service times (seconds, one decimal), no-shows, walkouts.
pub fn queue(r: &Report) -> String {
    write(
        &[
            "period",
            "group",
            "group_name",
            "tickets",
            "called",
            "served",
            "no_shows",
            "walkouts",
            "wait_median_s",
            "wait_p90_s",
            "service_median_s",
            "service_p90_s",
        ],
        r.queue
            .iter()
            .map(|q| {
                vec![
                    text(&q.period),
                    text(&q.group),
                    text(&q.group_name),
                    int(q.tickets),
                    int(q.called),
                    int(q.served),
                    int(q.no_shows),
                    q.walkouts.map(int).unwrap_or(Cell::Num(String::new())),
                    median(&q.wait),
                    p90(&q.wait),
                    median(&q.service_time),
                    p90(&q.service_time),
                ]
            })
            .collect(),
    )
}

/// The NPS table.
pub fn nps(r: &Report) -> String {
    write(
        &[
            "period",
            "group",
            "group_name",
            "responses",
            "promoters",
            "passives",
            "detractors",
            "nps",
        ],
        r.nps
            .iter()
            .map(|n| {
                vec![
                    text(&n.period),
                    text(&n.group),
                    text(&n.group_name),
                    int(n.nps.responses),
                    int(n.nps.promoters),
                    int(n.nps.passives),
                    int(n.nps.detractors),
                    secs(n.nps.score),
                ]
            })
            .collect(),
    )
}

/// The campaign table (rate in percent, one decimal).
pub fn campaigns(r: &Report) -> String {
    write(
        &[
            "period",
            "group",
            "group_name",
            "campaign_id",
            "campaign_name",
            "variant",
            "exposures",
            "conversions",
            "rate_percent",
        ],
        r.campaigns
            .iter()
            .map(|c| {
                vec![
                    text(&c.period),
                    text(&c.group),
                    text(&c.group_name),
                    text(&c.campaign_id),
                    text(c.campaign_name.clone().unwrap_or_default()),
                    text(&c.variant),
                    int(c.shown),
                    int(c.redeemed),
                    Cell::Num(format!("{:.1}", c.conversion * 100.0)),
                ]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_and_formulas_guarded() {
        assert_eq!(field("Tienda Centro", true), "Tienda Centro");
        assert_eq!(field("Centro, Madrid", true), "\"Centro, Madrid\"");
        assert_eq!(field("El \"Corte\"", true), "\"El \"\"Corte\"\"\"");
        assert_eq!(field("two\nlines", true), "\"two\nlines\"");
        assert_eq!(
            field("=HYPERLINK(\"x\")", true),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(field("+34 600", true), "'+34 600");
        assert_eq!(field("-1+1", true), "'-1+1");
        assert_eq!(field("@SUM(A1)", true), "'@SUM(A1)");
        assert_eq!(field("\tcmd", true), "'\tcmd");
        assert_eq!(field("Añil ✓", true), "Añil ✓");
        // Numbers the report computed stay numbers.
        assert_eq!(field("-20.0", false), "-20.0");
    }
}

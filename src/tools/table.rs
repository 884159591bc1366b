//! The `clients` table: the entries of a `clients.*.result` reply to rows,
//! and rows to aligned text. Pure, so it is tested on literal JSON.

use super::colour;
use serde_json::{Map, Value};

const COLUMNS: [&str; 6] = ["CLIENT", "TYPE", "PLUGIN", "HOST", "STATUS", "CONFIGURED"];
const DETAIL_COLUMNS: [&str; 3] = ["VERSION", "AUTHOR", "DESCRIPTION"];
const STATUS_COLUMN: usize = 4;
const GAP: &str = "  ";

/// One client, as text cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub kind: String,
    pub plugin: String,
    pub host: String,
    pub status: String,
    pub configured: String,
    /// With `--detail`: version, author and description from the package's
    /// `identity`; for an invalid package, what is wrong with it instead of
    /// the (absent) description.
    pub detail: Option<[String; 3]>,
}

impl Row {
    fn cells(&self) -> Vec<&str> {
        let mut cells = vec![
            self.id.as_str(),
            &self.kind,
            &self.plugin,
            &self.host,
            &self.status,
            &self.configured,
        ];
        if let Some(detail) = &self.detail {
            cells.extend(detail.iter().map(String::as_str));
        }
        cells
    }
}

/// The rows of a clients map (`{ID: ENTRY, ...}`), sorted by client id.
pub fn rows(clients: &Map<String, Value>, detail: bool) -> Vec<Row> {
    let mut rows: Vec<Row> = clients.iter().map(|(id, entry)| row(id, entry, detail)).collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

fn row(id: &str, entry: &Value, detail: bool) -> Row {
    let field = |name: &str| cell(entry.get(name));
    let status = field("status");
    let detail = detail.then(|| {
        let identity = entry.get("data").and_then(|data| data.get("identity"));
        let about = |name: &str| cell(identity.and_then(|identity| identity.get(name)));
        let description = match entry.get("comment") {
            Some(comment) if status == "invalid" => cell(Some(comment)),
            _ => about("description"),
        };
        [about("version"), about("author"), description]
    });
    Row {
        id: clean(id),
        kind: field("type"),
        plugin: field("id"),
        host: field("host"),
        configured: field("configured"),
        status,
        detail,
    }
}

/// A JSON value as one cell: `-` when absent, null or empty.
fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return "-".into(),
        Some(Value::String(text)) => clean(text),
        Some(Value::Bool(true)) => "yes".into(),
        Some(Value::Bool(false)) => "no".into(),
        Some(other) => clean(&other.to_string()),
    };
    if text.trim().is_empty() {
        "-".into()
    } else {
        text
    }
}

/// Text from a package or a plugin, made safe for a terminal: a control
/// character (newline, escape...) could break the table or inject escape
/// sequences, so each becomes a space.
pub fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The table: a header line, then one line per row, columns aligned, the
/// status coloured when `colour`. Every line ends with a newline.
pub fn render(rows: &[Row], detail: bool, colour: bool) -> String {
    let mut header: Vec<&str> = COLUMNS.to_vec();
    if detail {
        header.extend(DETAIL_COLUMNS);
    }
    let lines: Vec<Vec<&str>> = std::iter::once(header).chain(rows.iter().map(Row::cells)).collect();
    let mut widths = vec![0; lines.first().map_or(0, Vec::len)];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let is_header = index == 0;
        let mut text = String::new();
        for (column, (cell, width)) in line.iter().zip(&widths).enumerate() {
            if column > 0 {
                text.push_str(GAP);
            }
            let padding = " ".repeat(width.saturating_sub(cell.chars().count()));
            if column == STATUS_COLUMN && !is_header {
                text.push_str(&colour::status(cell, colour));
            } else {
                text.push_str(cell);
            }
            text.push_str(&padding);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::json_map as map;
    use serde_json::json;

    fn sample() -> Map<String, Value> {
        map(json!({
            "domogik-test.box": {"status": "alive", "host": "box", "type": "plugin", "id": "test", "configured": null,
                "data": {"identity": {"version": "0.1.0", "author": "Maikel", "description": "Test\nplugin"}}},
            "domogik-bad.box": {"status": "invalid", "host": "box", "type": "plugin", "id": "bad", "configured": true,
                "data": {}, "comment": "plugin_bad/info.json is missing"},
        }))
    }

    #[test]
    fn list_table_is_sorted_and_aligned() {
        let table = render(&rows(&sample(), false), false, false);
        assert_eq!(
            table,
            "CLIENT            TYPE    PLUGIN  HOST  STATUS   CONFIGURED\n\
             domogik-bad.box   plugin  bad     box   invalid  yes\n\
             domogik-test.box  plugin  test    box   alive    -\n"
        );
    }

    #[test]
    fn detail_adds_identity_and_the_comment_of_invalid_packages() {
        let table = render(&rows(&sample(), true), true, false);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("VERSION  AUTHOR  DESCRIPTION"), "{table}");
        assert!(
            lines[1].ends_with("-        -       plugin_bad/info.json is missing"),
            "{table}"
        );
        // The newline inside the description does not break the table.
        assert!(lines[2].ends_with("0.1.0    Maikel  Test plugin"), "{table}");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn status_colour_does_not_shift_the_columns() {
        let plain = render(&rows(&sample(), false), false, false);
        let coloured = render(&rows(&sample(), false), false, true);
        assert!(coloured.contains("\x1b[32malive\x1b[0m    -\n"), "{coloured:?}");
        assert_eq!(
            coloured
                .replace("\x1b[32m", "")
                .replace("\x1b[1;31m", "")
                .replace("\x1b[0m", ""),
            plain
        );
    }

    #[test]
    fn odd_entries_still_give_a_row() {
        let clients = map(json!({"x": {"status": 3, "host": "", "data": {"identity": "nope"}}, "y": null}));
        let rows = rows(&clients, true);
        assert_eq!(rows[0].status, "3");
        assert_eq!(rows[0].host, "-");
        assert_eq!(rows[0].detail, Some(["-".into(), "-".into(), "-".into()]));
        assert_eq!(rows[1].plugin, "-");
    }

    #[test]
    fn no_clients_is_a_header_alone() {
        assert_eq!(render(&[], false, false).lines().count(), 1);
    }
}

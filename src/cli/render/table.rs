//! The `clients` table: the entries of a `clients.*.result` reply to rows,
//! and rows to aligned text. Pure, so it is tested on literal JSON.

use super::colour;
use serde_json::{Map, Value};

const COLUMNS: [&str; 8] = [
    "CLIENT",
    "TYPE",
    "PLUGIN",
    "HOST",
    "STATUS",
    "CONFIGURED",
    "SEEN",
    "PID",
];
const DETAIL_COLUMNS: [&str; 3] = ["VERSION", "AUTHOR", "DESCRIPTION"];
const STATUS_COLUMN: usize = 4;
const GAP: &str = "  ";

/// One client, as text cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub id: String,
    pub kind: String,
    pub plugin: String,
    pub host: String,
    pub status: String,
    pub configured: String,
    /// From the 0.5 list (`client.list.get`): `12 s ago`, and the pid of
    /// a plugin the manager started; `-` when unknown.
    pub seen: String,
    pub pid: String,
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
            &self.seen,
            &self.pid,
        ];
        if let Some(detail) = &self.detail {
            cells.extend(detail.iter().map(String::as_str));
        }
        cells
    }
}

/// The rows of a clients map (`{ID: ENTRY, ...}`), sorted by client id,
/// with `last_seen` and `pid` from the 0.5 list of the same clients
/// (`{plugin-NAME.HOST: ENTRY, ...}`, empty if the manager has none) as
/// seen at `now` (Unix seconds).
pub(crate) fn rows(clients: &Map<String, Value>, detail: bool, v05: &Map<String, Value>, now: f64) -> Vec<Row> {
    let mut rows: Vec<Row> = clients
        .iter()
        .map(|(id, entry)| {
            let mut row = row(id, entry, detail);
            let key = format!("plugin-{}.{}", row.plugin, row.host);
            if let Some(entry) = v05.get(&key) {
                row.seen = entry
                    .get("last_seen")
                    .and_then(Value::as_f64)
                    .map_or("-".into(), |at| ago(now - at));
                row.pid = match entry.get("pid").and_then(Value::as_u64) {
                    None | Some(0) => "-".into(),
                    Some(pid) => pid.to_string(),
                };
            }
            row
        })
        .collect();
    // The 0.5 list's clients that are no plugin (xPL devices, docs/PROTOCOL.md
    // §11): the seed's map has none of them.
    rows.extend(
        v05.iter()
            .filter(|(_, entry)| entry.get("type").and_then(Value::as_str).is_some_and(|kind| kind != "plugin"))
            .map(|(id, entry)| {
                let mut row = row(id, entry, detail);
                row.plugin = cell(entry.get("name"));
                row.seen = entry
                    .get("last_seen")
                    .and_then(Value::as_f64)
                    .map_or("-".into(), |at| ago(now - at));
                row.pid = match entry.get("pid").and_then(Value::as_u64) {
                    None | Some(0) => "-".into(),
                    Some(pid) => pid.to_string(),
                };
                row
            }),
    );
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

/// `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago` (a clock a little behind
/// the manager's says `0 s ago`).
pub(crate) fn ago(seconds: f64) -> String {
    let seconds = if seconds.is_finite() {
        seconds.max(0.0) as u64
    } else {
        0
    };
    match seconds {
        0..=119 => format!("{seconds} s ago"),
        120..=7199 => format!("{} min ago", seconds / 60),
        7200..=172_799 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
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
        seen: "-".into(),
        pid: "-".into(),
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
pub(crate) fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The table: a header line, then one line per row, columns aligned, the
/// status coloured when `colour`. Every line ends with a newline.
pub(crate) fn render(rows: &[Row], detail: bool, colour: bool) -> String {
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
    use crate::cli::json_map as map;
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
        let table = render(&rows(&sample(), false, &Map::new(), 0.0), false, false);
        assert_eq!(
            table,
            "CLIENT            TYPE    PLUGIN  HOST  STATUS   CONFIGURED  SEEN  PID\n\
             domogik-bad.box   plugin  bad     box   invalid  yes         -     -\n\
             domogik-test.box  plugin  test    box   alive    -           -     -\n"
        );
    }

    #[test]
    fn detail_adds_identity_and_the_comment_of_invalid_packages() {
        let table = render(&rows(&sample(), true, &Map::new(), 0.0), true, false);
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
        let plain = render(&rows(&sample(), false, &Map::new(), 0.0), false, false);
        let coloured = render(&rows(&sample(), false, &Map::new(), 0.0), false, true);
        assert!(
            coloured.contains("\x1b[32malive\x1b[0m    -           -     -\n"),
            "{coloured:?}"
        );
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
        let rows = rows(&clients, true, &Map::new(), 0.0);
        assert_eq!(rows[0].status, "3");
        assert_eq!(rows[0].host, "-");
        assert_eq!(rows[0].detail, Some(["-".into(), "-".into(), "-".into()]));
        assert_eq!(rows[1].plugin, "-");
    }

    #[test]
    fn last_seen_and_pid_come_from_the_v05_list() {
        let v05 = map(json!({
            "plugin-test.box": {"last_seen": 1000.5, "pid": 4242},
            "plugin-bad.box": {"last_seen": 100.0, "pid": 0},
        }));
        let rows = rows(&sample(), false, &v05, 1012.9);
        assert_eq!((rows[1].seen.as_str(), rows[1].pid.as_str()), ("12 s ago", "4242"));
        assert_eq!((rows[0].seen.as_str(), rows[0].pid.as_str()), ("15 min ago", "-"));
    }

    #[test]
    fn xpl_devices_come_from_the_v05_list_alone() {
        let v05 = map(json!({
            "plugin-test.box": {"type": "plugin", "last_seen": 1000.5, "pid": 4242},
            "acme-sensor.kitchen": {"host": "kitchen", "type": "xpl_client", "name": "acme-sensor",
                "last_seen": 1010.0, "pid": 0, "status": "dead", "configured": null},
        }));
        let rows = rows(&sample(), false, &v05, 1012.9);
        assert_eq!(rows.len(), 3);
        let device = &rows[0];
        assert_eq!(
            [&device.id, &device.kind, &device.plugin, &device.host, &device.status, &device.configured, &device.seen, &device.pid],
            ["acme-sensor.kitchen", "xpl_client", "acme-sensor", "kitchen", "dead", "-", "2 s ago", "-"]
        );
    }

    #[test]
    fn ago_units() {
        assert_eq!(ago(-3.0), "0 s ago");
        assert_eq!(ago(119.9), "119 s ago");
        assert_eq!(ago(120.0), "2 min ago");
        assert_eq!(ago(7200.0), "2 h ago");
        assert_eq!(ago(3.0 * 86_400.0), "3 d ago");
        assert_eq!(ago(f64::NAN), "0 s ago");
    }

    #[test]
    fn no_clients_is_a_header_alone() {
        assert_eq!(render(&[], false, false).lines().count(), 1);
    }
}

//! The one table the benchmark prints: each figure, its floor, the ratio,
//! and the target.

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The item number(s).
    pub item: &'static str,
    pub what: String,
    pub n: String,
    pub manager: String,
    pub floor: String,
    pub ratio: String,
    pub target: String,
}

impl Row {
    pub fn new(item: &'static str, what: impl Into<String>, n: impl ToString) -> Row {
        Row {
            item,
            what: what.into(),
            n: n.to_string(),
            manager: String::new(),
            floor: "-".into(),
            ratio: "-".into(),
            target: String::new(),
        }
    }

    pub fn manager(mut self, value: impl Into<String>) -> Row {
        self.manager = value.into();
        self
    }

    pub fn floor(mut self, value: impl Into<String>, ratio: impl Into<String>) -> Row {
        self.floor = value.into();
        self.ratio = ratio.into();
        self
    }

    pub fn target(mut self, value: impl Into<String>) -> Row {
        self.target = value.into();
        self
    }

    fn cells(&self) -> [&str; 7] {
        [
            self.item,
            &self.what,
            &self.n,
            &self.manager,
            &self.floor,
            &self.ratio,
            &self.target,
        ]
    }
}

const HEADER: [&str; 7] = ["#", "measure", "N", "manager", "floor", "ratio", "target"];

/// The table as Markdown-compatible text (pipes between columns), padded
/// so it also reads well in a terminal.
pub fn render(rows: &[Row]) -> String {
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row.cells()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = vec![line(HEADER)];
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push(format!("|-{}-|", rule.join("-|-")));
    out.extend(rows.iter().map(|row| line(row.cells())));
    out.join("\n")
}

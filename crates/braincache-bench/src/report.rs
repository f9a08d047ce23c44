//! The result table.

use serde::Serialize;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Better {
    /// Throughput, hit ratio: bigger is better; the goal is a minimum ratio.
    Higher,
    /// Latency, time: smaller is better; the goal is a maximum ratio.
    Lower,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The workload.
    pub workload: String,
    /// braincache's figure.
    pub braincache: f64,
    /// The peer's name.
    pub peer: String,
    /// The peer's figure (NaN when the peer could not run).
    pub peer_value: f64,
    /// The unit of both figures.
    pub unit: String,
    /// braincache / peer.
    pub ratio: f64,
    /// The goal on the ratio, if any.
    pub goal: Option<f64>,
    /// Which way is better.
    pub better: Better,
    /// Whether the goal is met (None without a goal or a peer figure).
    pub met: Option<bool>,
    /// Free-form remark (why a peer was skipped, ...).
    pub note: String,
}

impl Row {
    /// A row comparing `ours` against `peer_value`.
    pub fn new(
        workload: impl Into<String>,
        ours: f64,
        peer: impl Into<String>,
        peer_value: f64,
        unit: impl Into<String>,
        goal: Option<f64>,
        better: Better,
    ) -> Row {
        let ratio = ours / peer_value;
        let met = goal.filter(|_| ratio.is_finite()).map(|g| match better {
            Better::Higher => ratio >= g,
            Better::Lower => ratio <= g,
        });
        Row {
            workload: workload.into(),
            braincache: ours,
            peer: peer.into(),
            peer_value,
            unit: unit.into(),
            ratio,
            goal,
            better,
            met,
            note: String::new(),
        }
    }

    /// Adds a remark.
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x.abs() >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Prints the rows as a markdown table.
pub fn print(rows: &[Row]) {
    println!("| workload | braincache | peer | peer figure | unit | ratio | goal | met |");
    println!("|---|---:|---|---:|---|---:|---|---|");
    for r in rows {
        let goal = match (r.goal, r.better) {
            (Some(g), Better::Higher) => format!(">= {g}x"),
            (Some(g), Better::Lower) => format!("<= {g}x"),
            (None, _) => String::new(),
        };
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let ratio = if r.ratio.is_finite() {
            format!("{:.2}x", r.ratio)
        } else {
            "-".into()
        };
        let note = if r.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.note)
        };
        println!(
            "| {}{} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            note,
            fmt_num(r.braincache),
            r.peer,
            fmt_num(r.peer_value),
            r.unit,
            ratio,
            goal,
            met
        );
    }
}

//! What both benchmarks share: the one table format they print, and the
//! big record table they load.

pub struct Row {
    what: String,
    /// Both columns' figures, or (`None`) a ratio measured otherwise.
    figures: Option<(Option<f64>, f64)>,
    ratio: Option<f64>,
    target: &'static str,
}

pub fn row(what: &str, floor: Option<f64>, project: f64, target: &'static str) -> Row {
    Row {
        what: what.to_owned(),
        figures: Some((floor, project)),
        ratio: floor.filter(|f| *f > 0.0).map(|f| project / f),
        target,
    }
}

/// A row of a ratio alone, not one of two figures in the table.
#[allow(
    dead_code,
    reason = "each bench compiles this module; micro.rs has no such row"
)]
pub fn ratio_row(what: &str, ratio: f64, target: &'static str) -> Row {
    Row {
        what: what.to_owned(),
        figures: None,
        ratio: Some(ratio),
        target,
    }
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!("| measurement | floor | authdns | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    for row in rows {
        let (floor, project) = row.figures.map_or((None, None), |(f, p)| (f, Some(p)));
        let ratio = row.ratio.map_or(String::new(), |r| format!("{r:.2}"));
        println!(
            "| {} | {} | {} | {} | {} |",
            row.what,
            floor.map_or(String::new(), number),
            project.map_or(String::new(), number),
            ratio,
            row.target
        );
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// A table of `records` records named `hostNNNNNNN.example.org`.
pub fn big_table_text(records: usize) -> String {
    (0..records)
        .map(|i| {
            format!(
                "host{i:07}.example.org\t10.{}.{}.{}\tA\n",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            )
        })
        .collect()
}

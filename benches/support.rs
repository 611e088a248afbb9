//! What both benchmarks share: the one table format they print, and the
//! big record table they load.

pub struct Row {
    what: String,
    floor: Option<f64>,
    project: f64,
    target: &'static str,
}

pub fn row(what: &str, floor: Option<f64>, project: f64, target: &'static str) -> Row {
    Row {
        what: what.to_owned(),
        floor,
        project,
        target,
    }
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!("| measurement | floor | authdns | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    for row in rows {
        let floor = row.floor.map_or(String::new(), number);
        let ratio = row
            .floor
            .filter(|f| *f > 0.0)
            .map_or(String::new(), |f| format!("{:.2}", row.project / f));
        println!(
            "| {} | {} | {} | {} | {} |",
            row.what,
            floor,
            number(row.project),
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

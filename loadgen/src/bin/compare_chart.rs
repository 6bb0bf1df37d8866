//! ringmq-compare-chart: draws the results of `loadgen/compare.sh` as one SVG file.
//!
//! Usage: `ringmq-compare-chart RESULTS_DIR OUTPUT.svg`. RESULTS_DIR holds the loadgen
//! JSON documents named `<scenario>.<broker>.<round>.json`. The chart has two panels:
//! delivered messages per second per scenario and broker (median of the rounds, log
//! scale), and the latency percentiles (p50 .. max) of the fixed-rate scenario.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use plotters::prelude::*;
use serde_json::Value;

const BROKERS: [(&str, RGBColor); 2] = [
    ("ringmq", RGBColor(200, 60, 40)),
    ("mosquitto", RGBColor(40, 90, 180)),
];
const PERCENTILES: [(&str, &str); 6] = [
    ("p50", "p50_us"),
    ("p90", "p90_us"),
    ("p99", "p99_us"),
    ("p99.9", "p99_9_us"),
    ("max", "max_us"),
    ("mean", "mean_us"),
];

/// (scenario, broker) -> the runs' JSON documents.
type Runs = BTreeMap<(String, String), Vec<Value>>;

fn load(dir: &Path) -> Result<Runs, String> {
    let mut runs = Runs::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() != 4 || parts[3] != "json" {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        if let Ok(doc) = serde_json::from_str::<Value>(&text) {
            runs.entry((parts[0].to_owned(), parts[1].to_owned()))
                .or_default()
                .push(doc);
        }
    }
    if runs.is_empty() {
        return Err(format!(
            "no <scenario>.<broker>.<round>.json files in {}",
            dir.display()
        ));
    }
    Ok(runs)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn field(doc: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(doc, |d, k| d.get(*k))?.as_f64()
}

fn draw(runs: &Runs, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);

    // Throughput: one group of bars per scenario.
    let scenarios: Vec<String> = {
        let mut s: Vec<String> = runs
            .keys()
            .map(|(s, _)| s.clone())
            .filter(|s| !s.starts_with("idle"))
            .collect();
        s.dedup();
        s
    };
    let rate = |s: &str, b: &str| {
        runs.get(&(s.to_owned(), b.to_owned())).and_then(|docs| {
            median(
                docs.iter()
                    .filter_map(|d| field(d, &["delivery", "delivered_per_s"]))
                    .collect(),
            )
        })
    };
    let top = scenarios
        .iter()
        .flat_map(|s| BROKERS.iter().filter_map(|(b, _)| rate(s, b)))
        .fold(10.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "delivered messages/s (median, log scale)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(90)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..scenarios.len() as f64, (1.0..top * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(scenarios.len() * 2 + 1)
        .x_label_formatter(&|x: &f64| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                scenarios.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    for (k, (broker, color)) in BROKERS.iter().enumerate() {
        let bars = scenarios.iter().enumerate().filter_map(|(i, s)| {
            let v = rate(s, broker)?;
            let x0 = i as f64 + 0.1 + 0.4 * k as f64;
            Some(Rectangle::new(
                [(x0, 1.0), (x0 + 0.38, v.max(1.0))],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)?
            .label(*broker)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;

    // Latency percentiles of the fixed-rate scenario.
    let fixed = scenarios.iter().find(|s| s.starts_with("latency")).cloned();
    let pct = |b: &str, key: &str| {
        let docs = runs.get(&(fixed.clone()?, b.to_owned()))?;
        median(
            docs.iter()
                .filter_map(|d| field(d, &["delivery", "latency", key]))
                .map(|us| us / 1000.0)
                .collect(),
        )
    };
    let worst = BROKERS
        .iter()
        .flat_map(|(b, _)| PERCENTILES.iter().take(5).filter_map(|(_, k)| pct(b, k)))
        .fold(0.1_f64, f64::max);
    let title = format!(
        "latency at fixed rate, ms ({})",
        fixed.clone().unwrap_or_else(|| "none".into())
    );
    let mut lat = ChartBuilder::on(&right)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.0, (0.01..worst * 2.0).log_scale())?;
    lat.configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x: &f64| {
            PERCENTILES
                .get(x.round() as usize)
                .map(|p| p.0.to_owned())
                .unwrap_or_default()
        })
        .draw()?;
    for (broker, color) in BROKERS {
        let points: Vec<(f64, f64)> = PERCENTILES
            .iter()
            .take(5)
            .enumerate()
            .filter_map(|(i, (_, k))| Some((i as f64, pct(broker, k)?)))
            .collect();
        lat.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(broker)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
            });
        lat.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    lat.configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: ringmq-compare-chart RESULTS_DIR OUTPUT.svg");
        return ExitCode::from(2);
    };
    let runs = match load(Path::new(dir)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringmq-compare-chart: {e}");
            return ExitCode::from(1);
        }
    };
    match draw(&runs, Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq-compare-chart: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rate: f64, p50_us: f64) -> String {
        format!(
            r#"{{"delivery": {{"delivered_per_s": {rate}, "latency": {{"p50_us": {p50_us}, "p90_us": {p50_us}, "p99_us": {p50_us}, "p99_9_us": {p50_us}, "max_us": {p50_us}, "mean_us": {p50_us}}}}}}}"#
        )
    }

    #[test]
    fn draws_both_panels_from_compare_results() {
        let dir = std::env::temp_dir().join(format!("ringmq-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (broker, rate) in [("ringmq", 1000.0), ("mosquitto", 100.0)] {
            for round in 1..=3 {
                std::fs::write(
                    dir.join(format!("pairs-qos0.{broker}.{round}.json")),
                    doc(rate * round as f64, 200.0),
                )
                .unwrap();
                std::fs::write(
                    dir.join(format!("latency-qos0.{broker}.{round}.json")),
                    doc(50.0, 150.0),
                )
                .unwrap();
            }
        }
        let runs = load(&dir).unwrap();
        assert_eq!(runs.len(), 4);
        let rate = median(
            runs[&("pairs-qos0".to_owned(), "ringmq".to_owned())]
                .iter()
                .filter_map(|d| field(d, &["delivery", "delivered_per_s"]))
                .collect(),
        );
        assert_eq!(rate, Some(2000.0));
        let out = dir.join("chart.svg");
        draw(&runs, &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        for text in [
            "pairs-qos0",
            "ringmq",
            "mosquitto",
            "latency at fixed rate",
            "p99.9",
        ] {
            assert!(svg.contains(text), "chart lacks {text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_directory_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("ringmq-chart-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(load(&dir)
            .unwrap_err()
            .contains("no <scenario>.<broker>.<round>.json files"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

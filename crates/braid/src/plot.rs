//! `--plot FILE.svg`: goodput, congestion window and smoothed RTT over time, per subflow of the
//! transfer and per competing flow, drawn from the run's time series with plotters' SVG backend.

use braid_sim::{Sample, SampleEvent, SAMPLE_INTERVAL};
use plotters::prelude::*;
use std::path::Path;

/// One line of a panel.
struct Line {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// Colours of braid's subflows, then of the competing flows.
const SUBFLOW_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
];
const COMPETING_COLORS: [RGBColor; 4] = [
    RGBColor(255, 127, 14),
    RGBColor(127, 127, 127),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];
const TOTAL_COLOR: RGBColor = RGBColor(0, 0, 0);

fn subflow_color(i: usize) -> RGBColor {
    SUBFLOW_COLORS[i % SUBFLOW_COLORS.len()]
}
fn competing_color(i: usize) -> RGBColor {
    COMPETING_COLORS[i % COMPETING_COLORS.len()]
}

/// Mbit/s over a sliding window of periodic samples: `value(sample)` is a byte counter.
fn rate_series(
    ticks: &[&Sample],
    window: usize,
    value: impl Fn(&Sample) -> Option<u64>,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for i in window..ticks.len() {
        let (a, b) = (ticks[i - window], ticks[i]);
        if let (Some(va), Some(vb)) = (value(a), value(b)) {
            let dt = b.t - a.t;
            if dt > 0.0 {
                out.push((b.t, vb.saturating_sub(va) as f64 * 8.0 / dt / 1e6));
            }
        }
    }
    out
}

/// The three panels' lines from the time series.
fn panels(samples: &[Sample]) -> [Vec<Line>; 3] {
    let ticks: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.event == SampleEvent::Tick)
        .collect();
    let span = samples.last().map_or(0.0, |s| s.t);
    // Goodput over sliding windows of a fortieth of the run, 100 to 500 ms: shorter ones
    // show the bursts in which a receiver reads and an ACK clock sends, not a rate.
    let window = ((span / SAMPLE_INTERVAL.as_secs_f64() / 40.0).round() as usize).clamp(10, 50);
    let subflows = samples.iter().map(|s| s.subflows.len()).max().unwrap_or(0);
    let competing = samples.iter().map(|s| s.competing.len()).max().unwrap_or(0);
    let sf_label = |i: usize| {
        let path = samples
            .iter()
            .find_map(|s| s.subflows.get(i).map(|sf| sf.path))
            .unwrap_or(i);
        format!("braid subflow {i} (path {path})")
    };
    let tcp_label = |i: usize| format!("competing TCP {i}");
    let mut goodput = vec![Line {
        label: "braid total (read)".into(),
        color: TOTAL_COLOR,
        points: rate_series(&ticks, window, |s| Some(s.bytes_read)),
    }];
    let (mut cwnd, mut srtt) = (Vec::new(), Vec::new());
    let kib = |v: u32| f64::from(v) / 1024.0;
    for i in 0..subflows {
        let color = subflow_color(i);
        goodput.push(Line {
            label: sf_label(i),
            color,
            points: rate_series(&ticks, window, |s| {
                s.subflows.get(i).map(|sf| sf.bytes_acked)
            }),
        });
        cwnd.push(Line {
            label: sf_label(i),
            color,
            points: samples
                .iter()
                .filter_map(|s| s.subflows.get(i).map(|sf| (s.t, kib(sf.cwnd))))
                .collect(),
        });
        srtt.push(Line {
            label: sf_label(i),
            color,
            points: samples
                .iter()
                .filter_map(|s| {
                    s.subflows
                        .get(i)
                        .and_then(|sf| sf.srtt_ms.map(|v| (s.t, v)))
                })
                .collect(),
        });
    }
    for i in 0..competing {
        let color = competing_color(i);
        goodput.push(Line {
            label: tcp_label(i),
            color,
            points: rate_series(&ticks, window, |s| s.competing.get(i).map(|c| c.bytes)),
        });
        cwnd.push(Line {
            label: tcp_label(i),
            color,
            points: samples
                .iter()
                .filter_map(|s| s.competing.get(i).map(|c| (s.t, kib(c.cwnd))))
                .collect(),
        });
        srtt.push(Line {
            label: tcp_label(i),
            color,
            points: samples
                .iter()
                .filter_map(|s| s.competing.get(i).and_then(|c| c.srtt_ms.map(|v| (s.t, v))))
                .collect(),
        });
    }
    [goodput, cwnd, srtt]
}

/// Writes the plot of `samples` to `path` as SVG, with `title` on top.
pub fn write_svg(path: &Path, title: &str, samples: &[Sample]) -> Result<(), String> {
    draw(path, title, samples).map_err(|e| format!("drawing {}: {e}", path.display()))
}

fn draw(path: &Path, title: &str, samples: &[Sample]) -> Result<(), Box<dyn std::error::Error>> {
    let t_end = samples.last().map_or(0.0, |s| s.t).max(0.01);
    let root = SVGBackend::new(path, (1000, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((3, 1));
    let names = [
        ("goodput", "Mbit/s"),
        ("congestion window", "KiB"),
        ("smoothed RTT", "ms"),
    ];
    for ((area, lines), (name, unit)) in areas.iter().zip(panels(samples)).zip(names) {
        let y_max = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        // Headroom above the lines for the legend.
        let y_max = if y_max > 0.0 { y_max * 1.4 } else { 1.0 };
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_end, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc(unit)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for line in lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(line.points, color.stroke_width(2)))?
                .label(line.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_sim::{CompetingSample, SubflowSample};

    fn sample(t: f64, acked: u64, read: u64) -> Sample {
        Sample {
            t,
            event: SampleEvent::Tick,
            subflows: vec![SubflowSample {
                path: 0,
                state: "established".into(),
                cwnd: 10 * 1024,
                ssthresh: None,
                srtt_ms: Some(20.0),
                inflight: 0,
                bytes_sent: acked,
                bytes_acked: acked,
            }],
            send_queue: 0,
            recv_queue: 0,
            bytes_read: read,
            competing: vec![CompetingSample {
                bytes: read / 2,
                cwnd: 2048,
                srtt_ms: None,
            }],
        }
    }

    #[test]
    fn rates_come_from_byte_counters() {
        // 125 000 bytes every 10 ms: 100 Mbit/s.
        let s: Vec<Sample> = (0..50)
            .map(|i| sample(i as f64 * 0.01, i * 125_000, i * 125_000))
            .collect();
        let [goodput, cwnd, srtt] = panels(&s);
        assert_eq!(goodput.len(), 3, "total, one subflow, one competing flow");
        for p in &goodput[0].points {
            assert!((p.1 - 100.0).abs() < 1e-6, "{p:?}");
        }
        for p in &goodput[2].points {
            assert!((p.1 - 50.0).abs() < 1e-6, "{p:?}");
        }
        assert!(cwnd[0].points.iter().all(|p| p.1 == 10.0));
        assert_eq!(srtt[0].points.len(), 50);
        assert!(srtt[1].points.is_empty(), "no RTT measured yet");
    }
}

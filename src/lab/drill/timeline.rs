//! Owns the drill's picture: committed events per second over time, with each
//! injected fault (red) and each leadership change (blue) marked — the view the
//! seed asks operators to find in Grafana, as a standalone SVG.

use chrono::{DateTime, Utc};

/// One marker on the time axis.
#[derive(Debug, Clone)]
pub struct Marker {
    /// When.
    pub at: DateTime<Utc>,
    /// Label drawn beside it.
    pub label: String,
}

/// Renders the timeline. `committed` holds (bucket start, events) per `bucket_ms`.
pub fn render(
    committed: &[(DateTime<Utc>, i64)],
    bucket_ms: i64,
    faults: &[Marker],
    leadership: &[Marker],
) -> String {
    const WIDTH: f64 = 1200.0;
    const HEIGHT: f64 = 400.0;
    const LEFT: f64 = 60.0;
    const BOTTOM: f64 = 40.0;
    const TOP: f64 = 30.0;
    let earliest_marker = faults.iter().chain(leadership).map(|m| m.at).min();
    let (Some(first), Some(end)) = (
        committed.first().map(|(at, _)| *at),
        committed.last().map(|(at, _)| *at),
    ) else {
        return format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\"><text x=\"20\" y=\"40\">no commits</text></svg>\n");
    };
    let start = earliest_marker.map_or(first, |marker| marker.min(first));
    let span_ms = (end - start).num_milliseconds().max(1) as f64;
    // A bucket without commits is a zero, not a gap: outages must show as dips.
    let counts: std::collections::HashMap<i64, i64> = committed
        .iter()
        .map(|(at, n)| (at.timestamp_millis() / bucket_ms, *n))
        .collect();
    let buckets: Vec<(DateTime<Utc>, i64)> = (first.timestamp_millis() / bucket_ms
        ..=end.timestamp_millis() / bucket_ms)
        .filter_map(|bucket| {
            let at = DateTime::from_timestamp_millis(bucket * bucket_ms)?;
            Some((at, counts.get(&bucket).copied().unwrap_or(0)))
        })
        .collect();
    let per_second = |events: i64| events as f64 * 1000.0 / bucket_ms as f64;
    let peak = committed
        .iter()
        .map(|(_, n)| per_second(*n))
        .fold(1.0, f64::max);
    let x = |at: DateTime<Utc>| {
        LEFT + (at - start).num_milliseconds() as f64 / span_ms * (WIDTH - LEFT - 20.0)
    };
    let y = |rate: f64| HEIGHT - BOTTOM - rate / peak * (HEIGHT - BOTTOM - TOP);
    let points: Vec<String> = buckets
        .iter()
        .map(|(at, n)| format!("{:.1},{:.1}", x(*at), y(per_second(*n))))
        .collect();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\" font-size=\"14\">Committed events per second ({:.1} s; red: injected faults, blue: new leader)</text>\n\
         <line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
         <text x=\"5\" y=\"{:.1}\">{:.0}/s</text><text x=\"5\" y=\"{:.1}\">0</text>\n",
        span_ms / 1000.0,
        HEIGHT - BOTTOM,
        WIDTH - 20.0,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM,
        TOP + 4.0,
        peak,
        HEIGHT - BOTTOM,
    );
    // Beyond this many markers the labels would overlap into noise; lines stay.
    const MOST_LABELS: usize = 30;
    for (markers, colour, offset) in [(faults, "red", 0.0), (leadership, "blue", 12.0)] {
        for marker in markers {
            let at = x(marker.at);
            svg.push_str(&format!(
                "<line x1=\"{at:.1}\" y1=\"{TOP}\" x2=\"{at:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"4 3\"/>\n",
                HEIGHT - BOTTOM,
            ));
            if markers.len() <= MOST_LABELS {
                svg.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>\n",
                    at + 2.0,
                    TOP + 10.0 + offset,
                    escape(&marker.label)
                ));
            }
        }
    }
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"green\" stroke-width=\"1.5\" points=\"{}\"/>\n</svg>\n",
        points.join(" ")
    ));
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_the_rate_line_are_drawn() {
        let start = Utc::now();
        let start =
            DateTime::from_timestamp_millis(start.timestamp_millis() / 250 * 250).expect("time");
        let committed: Vec<_> = (0..10)
            .filter(|i| *i != 4)
            .map(|i| (start + chrono::Duration::milliseconds(i * 250), 5))
            .collect();
        let svg = render(
            &committed,
            250,
            &[Marker {
                at: start + chrono::Duration::milliseconds(1000),
                label: "sigkill <1>".into(),
            }],
            &[Marker {
                at: start + chrono::Duration::milliseconds(1500),
                label: "epoch 2".into(),
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("stroke=\"red\"") && svg.contains("stroke=\"blue\""));
        assert!(svg.contains("sigkill &lt;1&gt;"));
        assert!(svg.contains("20/s"), "5 events per 250 ms is 20/s");
        let points = svg.split("points=\"").nth(1).expect("polyline");
        assert_eq!(
            points.split(' ').count(),
            10,
            "the empty bucket is drawn as a zero"
        );
    }
}

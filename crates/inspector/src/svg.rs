//! A [`Timeline`] as an SVG picture: one lane per stream (grouped by process, labelled
//! `pid <tgid> · stream <id> (device <d>)`), each task a box coloured by its kind, an arrow from
//! each record to the wait it released, and a time axis.
//!
//! The document is self-contained (attributes, no stylesheet or script), so it shows the same in
//! a browser, an `<img>` of a README and an editor. Each lane is a `<g class="lane">` with
//! `data-pid`, `data-stream` and `data-device`; each task a `<rect class="task">` with
//! `data-kind`; each arrow a `<path class="release">`; every task and arrow has a `<title>`
//! that a browser shows on hover.

use std::fmt::Write as _;

use crate::duration;
use crate::timeline::{Task, Timeline, record_label};

const WIDTH: f64 = 1200.0;
const LABEL_W: f64 = 230.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 70.0;
const LANE_H: f64 = 24.0;
const LANE_GAP: f64 = 8.0;
const PROC_GAP: f64 = 16.0;
const AXIS_H: f64 = 44.0;
/// Narrower tasks are widened to this, so that a 1 µs record shows on a 1 s timeline.
const MIN_TASK_W: f64 = 1.5;
const ARROW: &str = "#c62828";

/// The fill of a task kind.
pub fn colour(kind: &str) -> &'static str {
    match kind {
        "record" => "#2e7d32",
        "wait" => "#1565c0",
        "copy" => "#ef6c00",
        "set" => "#f9a825",
        "host_fn" => "#6a1b9a",
        "event_record" => "#00838f",
        "event_wait" => "#5d4037",
        "event_reset" => "#78909c",
        _ => "#9e9e9e",
    }
}

/// Escapes text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Axis ticks for a span of `span` ns: a step of 1, 2 or 5 × 10ⁿ ns giving at most about
/// `target` intervals, and the unit (name, ns) of the labels: the span's.
fn ticks(span: f64, target: f64) -> (f64, &'static str, f64) {
    let raw = (span / target).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let (unit, per) = if span >= 1e9 {
        ("s", 1e9)
    } else if span >= 1e6 {
        ("ms", 1e6)
    } else if span >= 1e3 {
        ("µs", 1e3)
    } else {
        ("ns", 1.0)
    };
    (step, unit, per)
}

fn tick_label(v: f64, step: f64, unit: &str, per: f64) -> String {
    let decimals = (-(step / per).log10().floor()).clamp(0.0, 3.0) as usize;
    format!("{:.*} {unit}", decimals, v / per)
}

fn describe(task: &Task, span: (u64, u64)) -> String {
    let mut s = format!("{} (task {})", task.kind, task.task);
    if let Some((d, id)) = task.notify {
        let _ = write!(s, ", notify {d}:{id}");
    }
    if let Some(b) = task.bytes {
        let _ = write!(s, ", {b} bytes");
    }
    let _ = write!(s, ": {}", duration((span.1 - span.0) as f64));
    if task.is_open() {
        s.push_str(" and still running when the trace ends");
    }
    if let (Some(q), Some(st)) = (task.enqueue_ns, task.start_ns) {
        let _ = write!(s, ", queued {}", duration(st.saturating_sub(q) as f64));
    }
    if let Some(id) = task.record {
        let _ = write!(s, ", record {}", record_label(id));
    }
    if let Some(id) = task.released_by {
        let _ = write!(s, ", released by record {}", record_label(id));
    }
    if let Some(e) = task.error {
        let _ = write!(s, ", failed with {e}");
    }
    s
}

/// Renders `t` as an SVG document.
pub fn render(t: &Timeline) -> String {
    let plot_w = WIDTH - LABEL_W - RIGHT;
    let span = (t.last_ns.saturating_sub(t.origin_ns)).max(1) as f64;
    let x = |ns: u64| LABEL_W + (ns.saturating_sub(t.origin_ns)) as f64 / span * plot_w;

    // Lane tops, with a wider gap between processes.
    let mut tops = Vec::with_capacity(t.tracks.len());
    let mut y = TOP;
    for (i, track) in t.tracks.iter().enumerate() {
        if i > 0 {
            y += if t.tracks[i - 1].pid == track.pid {
                LANE_GAP
            } else {
                PROC_GAP
            };
        }
        tops.push(y);
        y += LANE_H;
    }
    let lanes_bottom = if t.tracks.is_empty() { TOP } else { y };
    let height = lanes_bottom + AXIS_H;

    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let summary = format!(
        "{} processes, {} streams, {} releases over {}",
        t.pids().len(),
        t.tracks.len(),
        t.releases.len(),
        duration(span)
    );
    let _ = writeln!(out, "<title>ascend-notify trace: {}</title>", esc(&summary));
    let _ = writeln!(
        out,
        r#"<defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{ARROW}"/></marker></defs>"#
    );
    let _ = writeln!(
        out,
        r##"<rect class="background" x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text class="heading" x="12" y="22" font-size="15" font-weight="bold">ascend-notify trace</text><text x="190" y="22" fill="#555555">{}</text>"##,
        esc(&summary)
    );

    // Legend: the kinds present, in a fixed order, then the arrow.
    let order = [
        "record",
        "wait",
        "copy",
        "set",
        "host_fn",
        "event_record",
        "event_wait",
        "event_reset",
    ];
    let mut kinds: Vec<&str> = Vec::new();
    for k in order {
        if t.tracks
            .iter()
            .any(|tr| tr.tasks.iter().any(|ta| ta.kind == k))
        {
            kinds.push(k);
        }
    }
    for tr in &t.tracks {
        for ta in &tr.tasks {
            if !kinds.contains(&ta.kind.as_str()) {
                kinds.push(&ta.kind);
            }
        }
    }
    let _ = writeln!(out, r#"<g class="legend">"#);
    let mut lx = 12.0;
    for k in &kinds {
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="36" width="12" height="12" rx="2" fill="{}"/><text x="{}" y="46">{}</text>"#,
            colour(k),
            lx + 16.0,
            esc(k)
        );
        lx += 28.0 + 7.0 * k.chars().count() as f64;
    }
    let _ = writeln!(
        out,
        r#"<path d="M{lx},42 L{},42" stroke="{ARROW}" stroke-width="1.5" marker-end="url(#arrowhead)"/><text x="{}" y="46">record released wait</text>"#,
        lx + 24.0,
        lx + 30.0
    );
    let _ = writeln!(out, "</g>");

    // Lanes.
    let _ = writeln!(out, r#"<g class="lanes">"#);
    for (ti, track) in t.tracks.iter().enumerate() {
        let top = tops[ti];
        let _ = writeln!(
            out,
            r#"<g class="lane" data-pid="{}" data-stream="{}" data-device="{}">"#,
            track.pid, track.stream, track.device
        );
        let _ = writeln!(
            out,
            r##"<rect class="lane-background" x="{LABEL_W}" y="{top}" width="{plot_w}" height="{LANE_H}" fill="#f3f4f6"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text class="lane-label" x="{}" y="{}" text-anchor="end">pid {} · stream {} (device {})</text>"#,
            LABEL_W - 8.0,
            top + LANE_H / 2.0 + 4.0,
            track.pid,
            track.stream,
            track.device
        );
        for r in t.refs(ti) {
            let Some(sp) = t.span(r) else { continue };
            let task = t.task(r);
            let x0 = x(sp.0);
            let w = (x(sp.1) - x0).max(MIN_TASK_W);
            let mut attrs = String::new();
            if task.error.is_some() {
                attrs.push_str(r##" stroke="#b71c1c" stroke-width="2""##);
            } else if task.is_open() {
                attrs.push_str(r##" stroke="#212121" stroke-width="1" stroke-dasharray="3 2""##);
            }
            let _ = writeln!(
                out,
                r#"<rect class="task" data-kind="{}" x="{x0:.2}" y="{}" width="{w:.2}" height="{}" rx="1.5" fill="{}"{attrs}><title>{}</title></rect>"#,
                esc(&task.kind),
                top + 3.0,
                LANE_H - 6.0,
                colour(&task.kind),
                esc(&describe(task, sp))
            );
            if w >= 8.0 + 7.0 * task.kind.chars().count() as f64 {
                let _ = writeln!(
                    out,
                    r##"<text x="{:.2}" y="{}" fill="#ffffff" font-size="11" pointer-events="none">{}</text>"##,
                    x0 + 4.0,
                    top + LANE_H / 2.0 + 4.0,
                    esc(&task.kind)
                );
            }
        }
        let _ = writeln!(out, "</g>");
    }
    let _ = writeln!(out, "</g>");

    // Time axis, with faint grid lines across the lanes.
    let (step, unit, per) = ticks(span, 8.0);
    let _ = writeln!(out, r##"<g class="axis" stroke="#9e9e9e" fill="#424242">"##);
    let axis_y = lanes_bottom + 8.0;
    let _ = writeln!(
        out,
        r#"<line x1="{LABEL_W}" y1="{axis_y}" x2="{}" y2="{axis_y}"/>"#,
        LABEL_W + plot_w
    );
    let mut k = 0u64;
    loop {
        let v = k as f64 * step;
        if v > span + step * 1e-9 {
            break;
        }
        let tx = LABEL_W + v / span * plot_w;
        let _ = writeln!(
            out,
            r#"<line x1="{tx:.2}" y1="{TOP}" x2="{tx:.2}" y2="{}" stroke-opacity="0.25"/><text x="{tx:.2}" y="{}" text-anchor="middle" stroke="none">{}</text>"#,
            axis_y + 5.0,
            axis_y + 19.0,
            esc(&tick_label(v, step, unit, per))
        );
        k += 1;
    }
    let _ = writeln!(out, "</g>");

    // Releases, on top.
    let _ = writeln!(
        out,
        r#"<g class="releases" stroke="{ARROW}" stroke-width="1.3" fill="none">"#
    );
    for rel in &t.releases {
        let (Some(a), Some(b)) = (t.span(rel.record), t.span(rel.wait)) else {
            continue;
        };
        let (x1, x2) = (x(a.1), x(b.1));
        let (ta, tb) = (tops[rel.record.track], tops[rel.wait.track]);
        let d = if rel.record.track == rel.wait.track {
            let (y1, lift) = (ta, LANE_H * 0.8);
            format!(
                "M{x1:.2},{y1} Q{:.2},{} {x2:.2},{y1}",
                (x1 + x2) / 2.0,
                y1 - lift
            )
        } else {
            // From the record lane's edge facing the wait lane to the wait lane's edge.
            let (y1, y2) = if ta < tb {
                (ta + LANE_H, tb)
            } else {
                (ta, tb + LANE_H)
            };
            let mid = (y1 + y2) / 2.0;
            format!("M{x1:.2},{y1} C{x1:.2},{mid} {x2:.2},{mid} {x2:.2},{y2}")
        };
        let title = format!(
            "record {} (pid {}, stream {}) released the wait of pid {}, stream {} (task {})",
            record_label(rel.id),
            t.tracks[rel.record.track].pid,
            t.tracks[rel.record.track].stream,
            t.tracks[rel.wait.track].pid,
            t.tracks[rel.wait.track].stream,
            t.task(rel.wait).task
        );
        let _ = writeln!(
            out,
            r#"<path class="release" d="{d}" marker-end="url(#arrowhead)"><title>{}</title></path>"#,
            esc(&title)
        );
    }
    let _ = writeln!(out, "</g>");
    let _ = writeln!(out, "</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Timeline {
        let rec = (10u64 << 32) | 1;
        let a = format!(
            "{{\"ev\":\"start\",\"ns\":5000,\"pid\":10,\"stream\":1,\"device\":0,\"task\":1,\"kind\":\"record\"}}\n\
             {{\"ev\":\"end\",\"ns\":5400,\"pid\":10,\"stream\":1,\"device\":0,\"task\":1,\"kind\":\"record\",\"record\":{rec}}}\n\
             {{\"ev\":\"start\",\"ns\":1000,\"pid\":10,\"stream\":2,\"device\":0,\"task\":1,\"kind\":\"<odd & kind>\"}}\n"
        );
        let b = format!(
            "{{\"ev\":\"start\",\"ns\":2000,\"pid\":20,\"stream\":3,\"device\":1,\"task\":1,\"kind\":\"wait\"}}\n\
             {{\"ev\":\"end\",\"ns\":6000,\"pid\":20,\"stream\":3,\"device\":1,\"task\":1,\"kind\":\"wait\",\"released_by\":{rec}}}\n"
        );
        Timeline::from_sources([("a", a), ("b", b)])
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(10_000.0, 8.0).0, 2_000.0);
        assert_eq!(ticks(7e9, 8.0).0, 1e9);
        assert_eq!(ticks(3.0, 8.0).0, 1.0);
        let (step, unit, per) = ticks(4e6, 8.0);
        assert_eq!((step, unit), (5e5, "ms"));
        assert_eq!(tick_label(1e6, step, unit, per), "1.0 ms");
        let (step, unit, per) = ticks(4e7, 8.0);
        assert_eq!(tick_label(1.5e7, step, unit, per), "15 ms");
    }

    #[test]
    fn one_lane_per_stream_a_box_per_task_an_arrow_per_release() {
        let svg = render(&sample());
        assert!(svg.starts_with("<?xml"));
        assert_eq!(svg.matches(r#"<g class="lane" "#).count(), 3);
        assert_eq!(svg.matches(r#"<rect class="task" "#).count(), 3);
        assert_eq!(svg.matches(r#"<path class="release" "#).count(), 1);
        assert!(svg.contains("pid 20 · stream 3 (device 1)"));
        assert!(svg.contains("&lt;odd &amp; kind&gt;"), "kinds are escaped");
        assert!(!svg.contains("<odd"), "{svg}");
    }

    #[test]
    fn an_empty_timeline_still_renders() {
        let svg = render(&Timeline::default());
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="lane""#).count(), 0);
    }
}

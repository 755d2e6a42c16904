//! The library behind `ascend-notify-sim`, the inspector of simulator namespaces (SEMANTICS §4
//! "Diagnosis"). Everything here is pure, so the binary stays a thin command line:
//!
//! - [`report`]: what `status`, `list` and `waits` print, as text and JSON, from a
//!   [`backend_sim::inspect::Snapshot`];
//! - [`timeline`]: the merge of a directory of `ASCEND_NOTIFY_SIM_TRACE` files into one
//!   timeline, with the record that released each wait;
//! - [`chrome`]: that timeline as a Chrome trace event file (Perfetto, `chrome://tracing`);
//! - [`svg`]: the same timeline as an SVG picture.

pub mod chrome;
pub mod report;
pub mod svg;
pub mod timeline;

/// A duration in the unit that suits it: `850 ns`, `12.5 µs`, `3 ms`, `1.25 s`.
pub fn duration(ns: f64) -> String {
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let text = if value >= 100.0 || unit == "ns" {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text} {unit}")
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0.0), "0 ns");
        assert_eq!(duration(850.0), "850 ns");
        assert_eq!(duration(12_500.0), "12.5 µs");
        assert_eq!(duration(3_000_000.0), "3 ms");
        assert_eq!(duration(1_250_000_000.0), "1.25 s");
        assert_eq!(duration(123_456_789.0), "123 ms");
    }
}

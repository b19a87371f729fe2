//! `/metrics` through the admin API, checked to be OpenMetrics text and
//! parsed with a Prometheus text parser (`prometheus-parse`), and the
//! samples tests look for in it.

use prometheus_parse::{Scrape, Value};

use crate::common::{Wisp, client};

/// `GET /metrics`, checked to be OpenMetrics text, parsed.
pub async fn scrape(wisp: &Wisp) -> (Scrape, String) {
    let admin = wisp.admin.as_ref().unwrap();
    let resp = client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    (Scrape::parse(lines).expect("unparsable /metrics"), text)
}

/// The value of the one sample `name` whose labels include `labels`.
pub fn value(scrape: &(Scrape, String), name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .0
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} {labels:?}: {} samples in\n{}",
        found.len(),
        scrape.1
    );
    match &found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} {labels:?} is not a number: {other:?}"),
    }
}

/// Cumulative bucket counts of a histogram, by upper bound.
pub fn buckets(scrape: &(Scrape, String), name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let sample = scrape
        .0
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no histogram {name} {labels:?} in\n{}", scrape.1));
    match &sample.value {
        Value::Histogram(counts) => counts.iter().map(|c| (c.less_than, c.count)).collect(),
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

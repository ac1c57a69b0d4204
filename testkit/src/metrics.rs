//! Reading a service's `/metrics` (OpenMetrics text) in tests.

/// The sum of every sample of `name` whose labels include all of `labels`
/// (`None` if there is none). A counter's samples are named with their
/// `_total`, a histogram's with `_bucket`, `_sum` and `_count`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (sample, value) = match line.rsplit_once(' ') {
            Some(split) => split,
            None => continue,
        };
        let (sample_name, sample_labels) = match sample.split_once('{') {
            Some((sample_name, rest)) => (sample_name, rest.trim_end_matches('}')),
            None => (sample, ""),
        };
        if sample_name != name {
            continue;
        }
        let has = |(key, wanted): &(&str, &str)| {
            sample_labels
                .split(',')
                .any(|pair| pair == format!("{key}=\"{wanted}\""))
        };
        if !labels.iter().all(has) {
            continue;
        }
        if let Ok(value) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// The `/metrics` text at `url`.
pub async fn scrape(url: &str) -> String {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.text().await.expect("a metrics body")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_over_the_labels_not_asked_for() {
        let text = "# TYPE a counter\na_total{kind=\"x\",g=\"1\"} 2\na_total{kind=\"y\",g=\"1\"} 3\nb 7\n# EOF\n";
        assert_eq!(sum(text, "a_total", &[]), Some(5.0));
        assert_eq!(sum(text, "a_total", &[("kind", "y")]), Some(3.0));
        assert_eq!(sum(text, "a_total", &[("kind", "z")]), None);
        assert_eq!(sum(text, "b", &[]), Some(7.0));
    }
}

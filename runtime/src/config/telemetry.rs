//! `[server.telemetry]`: where traces are exported (OTLP over HTTP).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// `[server.telemetry]`; everything off by default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector that receives traces, as a base URL like
    /// `http://127.0.0.1:4318` (spans go to its `/v1/traces`). Absent: no
    /// spans are made or exported.
    #[serde(default)]
    pub otlp_endpoint: Option<OtlpEndpoint>,
}

/// A checked OTLP/HTTP base URL (`http://host:port[/prefix]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpEndpoint(String);

impl OtlpEndpoint {
    /// Where spans are posted: the base URL's path plus `/v1/traces`, as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is read.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.0.trim_end_matches('/'))
    }
}

impl FromStr for OtlpEndpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let example = "write a collector's OTLP/HTTP base URL like `http://127.0.0.1:4318`";
        let uri: http::Uri = s
            .trim()
            .parse()
            .map_err(|e| format!("otlp_endpoint `{s}` is not a URL ({e}); {example}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "otlp_endpoint `{s}`: https is not supported; export to a collector on \
                     this host or network over http (e.g. an OpenTelemetry Collector that \
                     forwards over TLS), like `http://127.0.0.1:4318`"
                ));
            }
            _ => {
                return Err(format!(
                    "otlp_endpoint `{s}` is not an http:// URL; {example}"
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("otlp_endpoint `{s}` names no host; {example}"));
        }
        if uri.query().is_some() {
            return Err(format!("otlp_endpoint `{s}` has a query; {example}"));
        }
        Ok(OtlpEndpoint(uri.to_string()))
    }
}

impl fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for OtlpEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_base_urls_of_http_collectors() {
        let e: OtlpEndpoint = "http://127.0.0.1:4318".parse().unwrap();
        assert_eq!(e.traces_url(), "http://127.0.0.1:4318/v1/traces");
        let e: OtlpEndpoint = "http://collector:4318/otlp/".parse().unwrap();
        assert_eq!(e.traces_url(), "http://collector:4318/otlp/v1/traces");
        for (bad, says) in [
            ("127.0.0.1:4318", "not an http:// URL"),
            ("https://collector:4318", "https is not supported"),
            ("http://", "not a URL"),
            ("http://c:4318/?x=1", "has a query"),
            ("not a url", "not a URL"),
        ] {
            let err = bad.parse::<OtlpEndpoint>().unwrap_err();
            assert!(
                err.contains(says) && err.contains("http://127.0.0.1:4318"),
                "{bad}: {err}"
            );
        }
    }
}

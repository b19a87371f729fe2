//! What users write for event-driven functions: `[[topic]]` tables and a
//! function's `[function.trigger]` subscription. Defaults follow Pub/Sub
//! push subscriptions where Wisp imitates them (docs/events.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, Span, validate_name};

/// A named stream of events that functions subscribe to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Letters, digits, `-` and `_`, as function names.
    pub name: String,
    /// Undelivered events older than this are dropped (and counted).
    #[serde(default = "default_retention")]
    pub retention: Span,
    /// Largest event accepted (attributes and data).
    #[serde(default = "default_max_event_size")]
    pub max_event_size: ByteSize,
}

// Pub/Sub's default message retention.
fn default_retention() -> Span {
    Span(Duration::from_secs(7 * 24 * 3600))
}

fn default_max_event_size() -> ByteSize {
    ByteSize::mib(1)
}

impl TopicSpec {
    pub fn new(name: impl Into<String>) -> Self {
        TopicSpec {
            name: name.into(),
            retention: default_retention(),
            max_event_size: default_max_event_size(),
        }
    }

    /// Each problem as `(key, message)`, like [`crate::config::FunctionSpec::validate`].
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e.replace("function", "topic")))?;
        if self.retention.0.is_zero() {
            return Err(("retention", "must be greater than zero, like \"7d\"".into()));
        }
        if self.max_event_size.bytes() == 0 {
            return Err(("max_event_size", "must be greater than zero".into()));
        }
        Ok(())
    }
}

/// A function's subscription to a topic: how its events are delivered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub topic: String,
    /// Exact matches on attributes; events that differ are not delivered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filter: BTreeMap<String, String>,
    /// Attempts before the event is dead-lettered; 1 = no retry.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_min_backoff")]
    pub min_backoff: Span,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Span,
    /// The time limit of one delivery [default: the function's `timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_deadline: Option<Span>,
    /// Where exhausted events go; without it they are dropped (counted, logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// Deliveries to this function at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Events with the same `partitionkey` go one at a time, in publish order.
    #[serde(default)]
    pub ordered: bool,
}

// Pub/Sub's dead-letter default.
fn default_max_attempts() -> u32 {
    5
}
// Shorter than Pub/Sub's 10s/600s: one machine, functions that fail fast.
fn default_min_backoff() -> Span {
    Span(Duration::from_secs(1))
}
fn default_max_backoff() -> Span {
    Span(Duration::from_secs(60))
}
fn default_max_in_flight() -> u32 {
    16
}

/// Attempts allowed at most, as Pub/Sub's dead-letter policy.
const MAX_ATTEMPTS_LIMIT: u32 = 100;

impl TriggerSpec {
    pub fn new(topic: impl Into<String>) -> Self {
        TriggerSpec {
            topic: topic.into(),
            filter: BTreeMap::new(),
            max_attempts: default_max_attempts(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            ack_deadline: None,
            dead_letter_topic: None,
            max_in_flight: default_max_in_flight(),
            ordered: false,
        }
    }

    /// Checks what needs no other table; topic existence is the manifest's
    /// and the admin API's to check.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err((
                "max_attempts",
                format!(
                    "{} is not between 1 and {MAX_ATTEMPTS_LIMIT}",
                    self.max_attempts
                ),
            ));
        }
        if self.min_backoff.0.is_zero() {
            return Err(("min_backoff", "must be greater than zero".into()));
        }
        if self.max_backoff.0 < self.min_backoff.0 {
            return Err((
                "max_backoff",
                format!(
                    "{} is less than min_backoff = {}",
                    self.max_backoff, self.min_backoff
                ),
            ));
        }
        if self.ack_deadline.is_some_and(|d| d.0.is_zero()) {
            return Err(("ack_deadline", "must be greater than zero".into()));
        }
        if self.max_in_flight == 0 {
            return Err(("max_in_flight", "must be at least 1".into()));
        }
        if self.dead_letter_topic.as_deref() == Some(self.topic.as_str()) {
            return Err((
                "dead_letter_topic",
                format!("`{}` is the topic itself; name another topic", self.topic),
            ));
        }
        for name in self.filter.keys() {
            if !is_attribute_name(name) {
                return Err((
                    "filter",
                    format!("`{name}` is not a CloudEvents attribute name (1-20 of a-z, 0-9)"),
                ));
            }
        }
        Ok(())
    }

    /// Whether an event with these attributes is for this subscription.
    pub fn matches<'a>(&self, attribute: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.filter
            .iter()
            .all(|(name, want)| attribute(name) == Some(want.as_str()))
    }
}

fn is_attribute_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        let mut t = TriggerSpec::new("orders");
        t.validate().unwrap();
        t.max_attempts = 0;
        assert_eq!(t.validate().unwrap_err().0, "max_attempts");
        t.max_attempts = 3;
        t.max_backoff = Span(Duration::from_millis(10));
        assert_eq!(t.validate().unwrap_err().0, "max_backoff");
        t.max_backoff = Span(Duration::from_secs(10));
        t.dead_letter_topic = Some("orders".into());
        assert_eq!(t.validate().unwrap_err().0, "dead_letter_topic");
        t.dead_letter_topic = None;
        t.filter.insert("Type".into(), "x".into());
        assert_eq!(t.validate().unwrap_err().0, "filter");
        assert_eq!(TopicSpec::new("a b").validate().unwrap_err().0, "name");
    }

    #[test]
    fn filters_match_exactly() {
        let mut t = TriggerSpec::new("orders");
        t.filter.insert("type".into(), "a".into());
        assert!(t.matches(|n| (n == "type").then_some("a")));
        assert!(!t.matches(|n| (n == "type").then_some("ab")));
        assert!(!t.matches(|_| None));
    }
}

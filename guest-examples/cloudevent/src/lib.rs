//! `cloudevent`: receives CloudEvents (binary or structured HTTP mode), logs
//! each to stdout and acknowledges it with `204 No Content`.
//!
//! A *poison* event — type `com.example.poison`, or JSON data with
//! `"poison": true` — fails with `500`, which tells the platform to retry
//! (and eventually dead-letter) it. A request that is not a valid event gets
//! a `400` naming what is missing, from the SDK.

use wisp_sdk::{CloudEvent, event_handler};

const POISON_TYPE: &str = "com.example.poison";

fn is_poison(event: &CloudEvent) -> bool {
    event.event_type() == POISON_TYPE
        || event
            .data_json::<wisp_sdk::serde_json::Value>()
            .is_ok_and(|data| data.get("poison") == Some(&wisp_sdk::serde_json::Value::Bool(true)))
}

#[event_handler]
fn on_event(event: CloudEvent) -> Result<(), String> {
    println!(
        "cloudevent: id={} source={} type={} data={}",
        event.id(),
        event.source(),
        event.event_type(),
        event.data_text().unwrap_or("<binary or none>"),
    );
    if is_poison(&event) {
        return Err(format!("poison event {} refused", event.id()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_is_refused_by_type_or_data() {
        assert!(on_event(CloudEvent::new("1", "/t", "com.example.ok")).is_ok());
        assert!(on_event(CloudEvent::new("2", "/t", POISON_TYPE)).is_err());
        let poisoned = CloudEvent::new("3", "/t", "com.example.ok")
            .with_data("application/json", r#"{"poison": true}"#);
        assert!(on_event(poisoned).is_err());
    }
}

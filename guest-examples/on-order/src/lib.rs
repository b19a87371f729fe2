//! `on-order`: processes the `com.example.order.created` events that
//! `order-api` publishes to the `orders` topic.
//!
//! For a valid order (data `{"id": 1, "item": "tea", "quantity": 2}`) it prints
//! one line — order id, item, quantity, the event's id and which delivery
//! attempt this is — and acknowledges (`204`). Events of other types are
//! acknowledged and ignored.
//!
//! A *poison* order — data with `"poison": true`, a quantity over 100 smuggled
//! past `order-api`, or data that is not an order at all — fails: the SDK
//! answers `500` and logs why, Wisp redelivers it with backoff, and after the
//! trigger's `max_attempts` moves it to the dead-letter topic.

use wisp_sdk::serde_json::Value;
use wisp_sdk::{CloudEvent, event_handler};

const ORDER_CREATED: &str = "com.example.order.created";

/// A valid order, or why the event cannot be processed (retrying won't fix it,
/// so it ends in the dead-letter topic, where someone can look at it).
fn parse_order(event: &CloudEvent) -> Result<(u64, String, u64), String> {
    let order: Value = event.data_json().map_err(|e| e.to_string())?;
    if order.get("poison") == Some(&Value::Bool(true)) {
        return Err("poison order".into());
    }
    let id = order
        .get("id")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0)
        .ok_or("`id` is not a positive integer")?;
    let item = order
        .get("item")
        .and_then(Value::as_str)
        .filter(|item| !item.trim().is_empty())
        .ok_or("`item` is not a non-empty string")?;
    let quantity = order.get("quantity").and_then(Value::as_u64).ok_or("`quantity` is not an integer")?;
    if !(1..=100).contains(&quantity) {
        return Err(format!("quantity {quantity} is outside 1..=100"));
    }
    Ok((id, item.to_owned(), quantity))
}

#[event_handler]
fn on_order(event: CloudEvent) -> Result<(), String> {
    if event.event_type() != ORDER_CREATED {
        println!("on-order: ignoring event {} of type {}", event.id(), event.event_type());
        return Ok(());
    }
    let (id, item, quantity) = parse_order(&event).map_err(|reason| format!("order refused: {reason}"))?;
    let attempt = event.delivery_attempt().map_or_else(|| "?".to_owned(), |n| n.to_string());
    println!("on-order: order {id} item={item:?} quantity={quantity} ce-id={} attempt={attempt}", event.id());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(data: &str) -> CloudEvent {
        CloudEvent::new("e1", "/shop", ORDER_CREATED)
            .with_attribute("deliveryattempt", "2")
            .with_data("application/json", data)
    }

    #[test]
    fn valid_orders_are_acknowledged() {
        assert_eq!(on_order(order(r#"{"id": 1, "item": "tea", "quantity": 2}"#)), Ok(()));
        assert_eq!(on_order(CloudEvent::new("e2", "/x", "com.example.other")), Ok(()));
    }

    #[test]
    fn poison_orders_fail_so_they_are_retried() {
        for data in [
            r#"{"poison": true}"#,
            r#"{"id": 1, "item": "tea", "quantity": 101, "poison": false}"#,
            r#"{"id": 1, "item": "tea", "quantity": 0}"#,
            r#"{"id": 1, "quantity": 2}"#,
            "not json",
        ] {
            assert!(on_order(order(data)).is_err(), "{data}");
        }
        assert!(on_order(CloudEvent::new("e3", "/shop", ORDER_CREATED)).is_err(), "no data");
    }
}

//! `order-api`: takes orders over HTTP and publishes each to the `orders`
//! topic, where `on-order` (and its JavaScript and Python twins) process them.
//!
//! - `POST …/orders` with `{"id": 1, "item": "tea", "quantity": 2}` → validates
//!   it, publishes a `com.example.order.created` CloudEvent (source `/shop`,
//!   subject = the order id, data = the order as JSON) through
//!   `http://wisp.internal/topics/orders`, and answers
//!   `202 {"event_id": "<the id Wisp assigned>"}`.
//! - An invalid order → `400 {"error": "…", "field": "<the field>"}`: `id` must be
//!   a positive integer, `item` a non-empty string, `quantity` an integer from 1
//!   to 100. A body that is not a JSON object → `400 {"error": "…"}`.
//! - Publishing fails (the topic is not in the function's `publish` list, Wisp
//!   refuses the event, …) → `502 {"error": "…"}` with the reason.
//! - Another method → `405`; another path → `404`.

use wisp_sdk::events::{self, PublishError};
use wisp_sdk::serde_json::{Value, json};
use wisp_sdk::{CloudEvent, IntoResponse, Method, Request, Response, http_handler};

/// The topic orders go to, and the type and source of their events.
const TOPIC: &str = "orders";
const EVENT_TYPE: &str = "com.example.order.created";
const SOURCE: &str = "/shop";

/// A valid order.
#[derive(Debug, PartialEq)]
struct Order {
    id: u64,
    item: String,
    quantity: u64,
}

/// An error answer: status, message and, for a bad field, its name.
#[derive(Debug)]
struct ApiError {
    status: u16,
    message: String,
    field: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), field: None }
    }

    fn field(field: &'static str, message: &str) -> Self {
        ApiError { status: 400, message: format!("`{field}` {message}"), field: Some(field) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(field) => json!({ "error": self.message, "field": field }),
            None => json!({ "error": self.message }),
        };
        Response::json(&body).with_status(self.status)
    }
}

/// Checks every field, naming the first one that is wrong.
fn parse_order(body: &[u8]) -> Result<Order, ApiError> {
    let value: Value = wisp_sdk::serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, format!("the body is not valid JSON: {e}")))?;
    let Value::Object(order) = value else {
        return Err(ApiError::new(400, "the order must be a JSON object"));
    };
    let id = order
        .get("id")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::field("id", "must be a positive integer"))?;
    let item = order
        .get("item")
        .and_then(Value::as_str)
        .filter(|item| !item.trim().is_empty())
        .ok_or_else(|| ApiError::field("item", "must be a non-empty string"))?;
    let quantity = order
        .get("quantity")
        .and_then(Value::as_u64)
        .filter(|quantity| (1..=100).contains(quantity))
        .ok_or_else(|| ApiError::field("quantity", "must be an integer from 1 to 100"))?;
    Ok(Order { id, item: item.to_owned(), quantity })
}

/// The event announcing `order`; Wisp assigns its id.
fn order_event(order: &Order) -> CloudEvent {
    let data = json!({ "id": order.id, "item": order.item, "quantity": order.quantity });
    CloudEvent::without_id(SOURCE, EVENT_TYPE)
        .with_attribute("subject", order.id.to_string())
        .with_data("application/json", data.to_string())
}

fn publish_failed(e: PublishError) -> ApiError {
    ApiError::new(502, format!("could not publish the order: {e}"))
}

#[http_handler]
fn handle(mut req: Request) -> Result<Response, ApiError> {
    if req.path().trim_end_matches('/').rsplit('/').next() != Some("orders") {
        return Err(ApiError::new(404, format!("no route for {}; POST …/orders", req.path())));
    }
    if req.method() != &Method::Post {
        return Ok(ApiError::new(405, "method not allowed; use POST")
            .into_response()
            .with_header("allow", "POST"));
    }
    let body = req.body().map_err(|e| ApiError::new(e.status(), e.to_string()))?;
    let order = parse_order(body)?;
    let event_id = events::publish(TOPIC, &order_event(&order)).map_err(publish_failed)?;
    println!("order-api: order {} ({} x {}) published as event {event_id}", order.id, order.quantity, order.item);
    Ok(Response::json(&json!({ "event_id": event_id })).with_status(202))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str, body: &str) -> (u16, Value) {
        let response = handle(Request::new(method, path).with_body(body)).into_response();
        let status = response.status();
        let body = response.into_body_bytes().unwrap();
        (status, wisp_sdk::serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[test]
    fn valid_orders_parse() {
        let order = parse_order(br#"{"id": 1, "item": "tea", "quantity": 2, "note": "extra fields are ignored"}"#);
        assert_eq!(order.unwrap(), Order { id: 1, item: "tea".into(), quantity: 2 });
        assert!(parse_order(br#"{"id": 9, "item": "tea", "quantity": 100}"#).is_ok());
    }

    #[test]
    fn invalid_orders_name_the_field() {
        for (body, field) in [
            (r#"{"item": "tea", "quantity": 2}"#, "id"),
            (r#"{"id": 0, "item": "tea", "quantity": 2}"#, "id"),
            (r#"{"id": -3, "item": "tea", "quantity": 2}"#, "id"),
            (r#"{"id": 1.5, "item": "tea", "quantity": 2}"#, "id"),
            (r#"{"id": "1", "item": "tea", "quantity": 2}"#, "id"),
            (r#"{"id": 1, "item": " ", "quantity": 2}"#, "item"),
            (r#"{"id": 1, "item": 7, "quantity": 2}"#, "item"),
            (r#"{"id": 1, "item": "tea", "quantity": 0}"#, "quantity"),
            (r#"{"id": 1, "item": "tea", "quantity": 101}"#, "quantity"),
            (r#"{"id": 1, "item": "tea"}"#, "quantity"),
        ] {
            let (status, answer) = call(Method::Post, "/orders", body);
            assert_eq!(status, 400, "{body}");
            assert_eq!(answer["field"], field, "{body}: {answer}");
            assert!(answer["error"].as_str().unwrap().contains(field), "{answer}");
        }
        let (status, answer) = call(Method::Post, "/orders", "[1]");
        assert_eq!((status, answer["field"].clone()), (400, Value::Null));
        assert_eq!(call(Method::Post, "/orders", "{nope").0, 400);
    }

    #[test]
    fn the_event_carries_the_order() {
        let event = order_event(&Order { id: 7, item: "tea".into(), quantity: 2 });
        assert_eq!((event.id(), event.source(), event.event_type()), ("", SOURCE, EVENT_TYPE));
        assert_eq!(event.subject(), Some("7"));
        assert_eq!(event.data_content_type(), Some("application/json"));
        assert_eq!(event.data_json::<Value>().unwrap(), json!({ "id": 7, "item": "tea", "quantity": 2 }));
    }

    #[test]
    fn routes_and_publish_failure() {
        assert_eq!(call(Method::Get, "/orders", "").0, 405);
        assert_eq!(call(Method::Post, "/other", "{}").0, 404);
        // Off wasm there is no wasi:http to publish through: the 502 path.
        let (status, answer) = call(Method::Post, "/shop/orders/", r#"{"id": 1, "item": "tea", "quantity": 2}"#);
        assert_eq!(status, 502);
        assert!(answer["error"].as_str().unwrap().starts_with("could not publish the order"), "{answer}");
    }
}

//! `cart`: a shopping-cart API. Instances are fresh for every request, so
//! the carts live in the key-value store `carts` (`wisp_sdk::kv`), and the
//! currency and the payment key come from `wisp_sdk::config` (a `config`
//! value and a `[[secret]]`). `js-cart` and `py-cart` are the same API in
//! JavaScript and Python.
//!
//! - `GET    …/cart/<user>` → `200 {"user","items":{"tea":2},"currency"}`
//! - `POST   …/cart/<user>` with `{"item":"tea","quantity":2}` (quantity
//!   1–100, default 1) → `200` the cart after adding
//! - `DELETE …/cart/<user>` → `200` the emptied cart
//! - `POST   …/cart/<user>/checkout` → `200 {"order":N,…}` with `N` from an
//!   atomic increment, and the cart emptied; `409` when it is empty, `503`
//!   without the secret `payment-key`
//! - store not granted → `403`; bad input → `400`; wrong method → `405`;
//!   anything else → `404`; errors are `{"error":"…"}`
//!
//! Adding is a get then a set, not atomic: two concurrent adds to one cart
//! may lose one. The order counter is atomic.

use std::collections::BTreeMap;

use serde::Deserialize;
use wisp_sdk::kv::{self, Store};
use wisp_sdk::serde_json::{self, json};
use wisp_sdk::{IntoResponse, Method, Request, Response, config, http_handler};

/// The store this function must be granted (`keyvalue = ["carts"]`).
const STORE: &str = "carts";

type Items = BTreeMap<String, u32>;

#[derive(Deserialize)]
struct NewItem {
    item: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

/// Errors answer with a JSON body, like the rest of the API.
struct ApiError(u16, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Response::json(&json!({ "error": self.1 })).with_status(self.0)
    }
}

impl From<kv::Error> for ApiError {
    fn from(e: kv::Error) -> Self {
        match e {
            kv::Error::AccessDenied | kv::Error::NoSuchStore => ApiError(
                403,
                format!("this function is not granted the key-value store `{STORE}`"),
            ),
            other => ApiError(500, format!("the store failed: {other}")),
        }
    }
}

impl From<config::Error> for ApiError {
    fn from(e: config::Error) -> Self {
        ApiError(500, format!("config failed: {e}"))
    }
}

/// The user of `…/cart/<user>` and whether the path goes on to `/checkout`.
fn route(path: &str) -> Option<(&str, bool)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().rposition(|s| *s == "cart")?;
    match &segments[at + 1..] {
        [user] => Some((user, false)),
        [user, "checkout"] => Some((user, true)),
        _ => None,
    }
}

fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn load(store: &Store, key: &str) -> Result<Items, ApiError> {
    match store.get(key)? {
        None => Ok(Items::new()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| ApiError(500, format!("the stored cart is not valid JSON: {e}"))),
    }
}

#[http_handler]
fn handle(mut req: Request) -> Result<Response, ApiError> {
    let path = req.path().to_string();
    let (user, checkout) =
        route(&path).ok_or_else(|| ApiError(404, format!("no route for {path}")))?;
    if !valid_user(user) {
        return Err(ApiError(
            400,
            "the user must be 1-64 letters, digits, `-` or `_`".into(),
        ));
    }
    let currency = config::get("currency")?.unwrap_or_else(|| "USD".into());
    let store = kv::open(STORE)?;
    let key = format!("cart:{user}");
    let cart = |items: &Items| {
        Response::json(&json!({ "user": user, "items": items, "currency": currency }))
    };

    if checkout {
        if *req.method() != Method::Post {
            return Err(ApiError(405, "method not allowed; use POST".into()));
        }
        let Some(payment_key) = config::get("payment-key")? else {
            return Err(ApiError(
                503,
                "payments are not configured: grant this function the secret `payment-key`".into(),
            ));
        };
        let items = load(&store, &key)?;
        if items.is_empty() {
            return Err(ApiError(409, "the cart is empty".into()));
        }
        let order = store.increment("orders", 1)?;
        store.delete(&key)?;
        // Only the key's last four characters ever leave the function.
        let last_four = payment_key
            .char_indices()
            .rev()
            .nth(3)
            .map_or(0, |(at, _)| at);
        return Ok(Response::json(&json!({
            "order": order, "user": user, "items": items, "currency": currency,
            "payment_key": format!("…{}", &payment_key[last_four..]),
        })));
    }
    match req.method() {
        Method::Get => Ok(cart(&load(&store, &key)?)),
        Method::Post => {
            let new: NewItem = req.json().map_err(|e| ApiError(400, e.to_string()))?;
            let item = new.item.trim();
            if item.is_empty() {
                return Err(ApiError(
                    400,
                    "field `item` (a non-empty string) is required".into(),
                ));
            }
            if !(1..=100).contains(&new.quantity) {
                return Err(ApiError(
                    400,
                    "field `quantity` must be an integer from 1 to 100".into(),
                ));
            }
            let mut items = load(&store, &key)?;
            *items.entry(item.to_string()).or_default() += new.quantity;
            let bytes = serde_json::to_vec(&items).expect("a map of strings to numbers serializes");
            store.set(&key, bytes)?;
            Ok(cart(&items))
        }
        Method::Delete => {
            store.delete(&key)?;
            Ok(cart(&Items::new()))
        }
        _ => Err(ApiError(
            405,
            "method not allowed; use GET, POST or DELETE".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str, body: &str) -> (u16, serde_json::Value) {
        let response = handle(Request::new(method, path).with_body(body)).into_response();
        let status = response.status();
        (
            status,
            serde_json::from_slice(&response.into_body_bytes().unwrap()).unwrap(),
        )
    }

    #[test]
    fn adds_lists_checks_out_and_empties() {
        config::set_for_test("currency", "KRW");
        let (status, cart) = call(Method::Post, "/cart/ann", r#"{"item":"tea","quantity":2}"#);
        assert_eq!((status, &cart["items"]), (200, &json!({"tea": 2})));
        call(Method::Post, "/shop/cart/ann", r#"{"item":"tea"}"#);
        let (_, cart) = call(Method::Get, "/cart/ann", "");
        assert_eq!(
            cart,
            json!({"user": "ann", "items": {"tea": 3}, "currency": "KRW"})
        );
        // No payment key yet.
        assert_eq!(call(Method::Post, "/cart/ann/checkout", "").0, 503);
        config::set_for_test("payment-key", "sk_test_1234");
        let (status, order) = call(Method::Post, "/cart/ann/checkout", "");
        assert_eq!(
            (status, &order["order"], &order["payment_key"]),
            (200, &json!(1), &json!("…1234"))
        );
        assert_eq!(call(Method::Post, "/cart/ann/checkout", "").0, 409);
        call(Method::Post, "/cart/bob", r#"{"item":"cake"}"#);
        assert_eq!(call(Method::Delete, "/cart/bob", "").1["items"], json!({}));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(call(Method::Post, "/cart/ann", "{nope").0, 400);
        assert_eq!(call(Method::Post, "/cart/ann", r#"{"item":" "}"#).0, 400);
        assert_eq!(
            call(Method::Post, "/cart/ann", r#"{"item":"x","quantity":0}"#).0,
            400
        );
        assert_eq!(call(Method::Get, "/cart/a%20b", "").0, 400);
        assert_eq!(call(Method::Get, "/cart", "").0, 404);
        assert_eq!(call(Method::Get, "/cart/ann/other", "").0, 404);
        assert_eq!(call(Method::Put, "/cart/ann", "").0, 405);
        assert_eq!(call(Method::Get, "/cart/ann/checkout", "").0, 405);
    }
}

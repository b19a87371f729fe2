//! `send-email`: the function behind the `emails` task queue
//! (guest-examples/wisp.toml). Each task is a `POST` to its route with a JSON
//! body like `{"to": "a@example.com", "subject": "hi"}`.
//!
//! - A valid email → prints one line (`send-email: to=… subject=… task=…
//!   attempt=…`, the task's name and attempt from the `x-wisp-task` and
//!   `x-wisp-task-attempt` headers Wisp adds to each delivery) and answers
//!   `200`: the task is done. A real one would call a mail API here, keyed on
//!   the task name so that a redelivery does not send twice.
//! - A body that is not JSON, or without a `to` address (a non-empty string
//!   with an `@`), or a `subject` that is not a string → `400` naming the
//!   problem. The queue retries a `4xx` like any other non-`2xx` answer (up to
//!   its `max_attempts`, then keeps the task as `failed`), so producers should
//!   validate before they enqueue.
//! - Another method → `405`.

use wisp_sdk::serde_json::Value;
use wisp_sdk::{Method, Request, Response, http_handler};

/// A valid email task.
#[derive(Debug, PartialEq)]
struct Email {
    to: String,
    subject: String,
}

/// Checks the task's body, naming what is wrong.
fn parse_email(body: &[u8]) -> Result<Email, String> {
    let value: Value =
        wisp_sdk::serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(email) = value else {
        return Err("the task must be a JSON object like {\"to\": \"a@example.com\", \"subject\": \"hi\"}".into());
    };
    let to = email
        .get("to")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|to| to.contains('@'))
        .ok_or("`to` must be an email address")?;
    let subject = match email.get("subject") {
        None | Some(Value::Null) => "",
        Some(Value::String(subject)) => subject.as_str(),
        Some(_) => return Err("`subject` must be a string".into()),
    };
    Ok(Email { to: to.to_owned(), subject: subject.to_owned() })
}

#[http_handler]
fn handle(mut req: Request) -> Response {
    if req.method() != &Method::Post {
        return Response::text("send emails with POST\n").with_status(405).with_header("allow", "POST");
    }
    // Absent when the function is called directly rather than as a task.
    let task = req.header("x-wisp-task").unwrap_or("-").to_owned();
    let attempt = req.header("x-wisp-task-attempt").unwrap_or("-").to_owned();
    let email = match req.body().map_err(|e| e.to_string()).and_then(parse_email) {
        Ok(email) => email,
        Err(reason) => {
            eprintln!("send-email: task {task} attempt {attempt} refused: {reason}");
            return Response::text(format!("{reason}\n")).with_status(400);
        }
    };
    println!("send-email: to={} subject={} task={task} attempt={attempt}", email.to, email.subject);
    Response::text(format!("sent to {}\n", email.to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> Request {
        Request::new(Method::Post, "/send-email")
            .with_header("x-wisp-task", "welcome-42")
            .with_header("x-wisp-task-attempt", "1")
            .with_body(body)
    }

    #[test]
    fn a_valid_email_completes_the_task() {
        let response = handle(post(r#"{"to": "a@example.com", "subject": "hi"}"#));
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body_bytes().unwrap(), b"sent to a@example.com\n");
        assert_eq!(
            parse_email(br#"{"to": "b@example.com"}"#),
            Ok(Email { to: "b@example.com".into(), subject: String::new() })
        );
    }

    #[test]
    fn invalid_tasks_are_refused_with_400() {
        for body in [
            "not json",
            "[1]",
            r#"{"subject": "no recipient"}"#,
            r#"{"to": "", "subject": "hi"}"#,
            r#"{"to": "nobody", "subject": "hi"}"#,
            r#"{"to": 7}"#,
            r#"{"to": "a@example.com", "subject": 7}"#,
        ] {
            assert_eq!(handle(post(body)).status(), 400, "{body}");
        }
        assert_eq!(handle(Request::new(Method::Get, "/send-email")).status(), 405);
    }
}

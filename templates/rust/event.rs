//! {{name}}: receives the CloudEvents of its topic and logs each one.
//! `Ok` acknowledges the event; `Err` makes Wisp retry it later.

use wisp_sdk::{CloudEvent, event_handler};

#[event_handler]
fn on_event(event: CloudEvent) -> Result<(), String> {
    println!(
        "{{name}}: event {} of type {} from {}: {}",
        event.id(),
        event.event_type(),
        event.source(),
        event.data_text().unwrap_or("(no text data)"),
    );
    Ok(())
}

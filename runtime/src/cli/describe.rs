//! `wisp functions describe NAME`: a function's revision, limits and cost
//! totals, from the admin API's answer for the function.

use serde_json::Value;

/// A JSON value as people read it: strings bare, absent ones as `-`.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `bytes` in the largest binary unit that keeps it at least 1.
fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

pub fn print(f: &Value) {
    let (spec, m) = (&f["spec"], &f["metrics"]);
    let number = |v: &Value| v.as_f64().unwrap_or(0.0);
    let rows = [
        ("function", show(&f["name"])),
        (
            "revision",
            format!("{} ({})", show(&f["current_revision"]), show(&f["world"])),
        ),
        ("status", show(&f["status"])),
        ("memory", show(&spec["memory"])),
        ("timeout", show(&spec["timeout"])),
        ("cpu_time", show(&spec["cpu_time"])),
        ("max_instances", show(&spec["max_instances"])),
        (
            "budget",
            match spec["budget"].as_f64() {
                Some(budget) => format!(
                    "{budget} GB-s per hour ({:.4} used in the last hour)",
                    number(&m["gb_seconds_last_hour"])
                ),
                None => "-".into(),
            },
        ),
        ("invocations", show(&m["invocations"])),
        ("wall seconds", format!("{:.3}", number(&m["wall_seconds"]))),
        ("cpu seconds", format!("{:.3}", number(&m["cpu_seconds"]))),
        ("GB-seconds", format!("{:.4}", number(&m["gb_seconds"]))),
        (
            "peak memory",
            bytes(m["peak_memory_bytes"].as_u64().unwrap_or(0)),
        ),
    ];
    for (key, value) in rows {
        println!("{key:<14} {value}");
    }
    if let Some(error) = f["error"].as_str() {
        println!("{:<14} {error}", "error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
    }
}

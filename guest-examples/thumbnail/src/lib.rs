//! `thumbnail`: the event half of the photo pipeline. Subscribed to topic
//! `photo-events`, where the blob store `photos` publishes a
//! `dev.wisp.blob.object.finalized` event for every photo stored (by
//! `photo-upload` or `wisp blobs put`), it reads the photo and writes a copy
//! at half the width and height into the blob store `thumbnails`, under the
//! same name.
//!
//! Photos are binary PPM images (`P6`, 8 bits per channel): simple enough to
//! scale without an image library. Anything else is skipped with a line in
//! the log and acknowledged: retrying would not change it.

use wisp_sdk::serde_json::Value;
use wisp_sdk::{CloudEvent, blob, event_handler};

/// A binary PPM at half the width and height (rounded up): every other pixel
/// of every other row.
pub fn half(ppm: &[u8]) -> Result<Vec<u8>, String> {
    if !ppm.starts_with(b"P6") {
        let start = String::from_utf8_lossy(&ppm[..ppm.len().min(4)]).into_owned();
        return Err(format!("not a binary PPM (it starts with {start:?})"));
    }
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while ppm.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        if ppm.get(at) == Some(&b'#') {
            while ppm.get(at).is_some_and(|b| *b != b'\n') {
                at += 1;
            }
            continue;
        }
        let start = at;
        while ppm.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
            at += 1;
        }
        if start == at {
            return Err("not a PPM: the header ends early".into());
        }
        fields.push(String::from_utf8_lossy(&ppm[start..at]).into_owned());
    }
    let number = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("not a PPM: `{s}` is not a number"))
    };
    let (width, height, max) = (
        number(&fields[1])?,
        number(&fields[2])?,
        number(&fields[3])?,
    );
    if !(1..=255).contains(&max) {
        return Err(format!("only 8-bit PPMs are scaled (maxval {max})"));
    }
    let pixels = ppm.get(at + 1..).unwrap_or_default();
    let size = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .ok_or("the image is too large")?;
    if pixels.len() < size {
        return Err(format!("truncated: {} of {size} pixel bytes", pixels.len()));
    }
    let mut out = format!("P6\n{} {}\n{max}\n", width.div_ceil(2), height.div_ceil(2)).into_bytes();
    for y in (0..height).step_by(2) {
        for x in (0..width).step_by(2) {
            let i = (y * width + x) * 3;
            out.extend_from_slice(&pixels[i..i + 3]);
        }
    }
    Ok(out)
}

#[event_handler]
fn on_photo(event: CloudEvent) -> Result<(), String> {
    if event.event_type() != "dev.wisp.blob.object.finalized" {
        return Ok(());
    }
    let data: Value = event.data_json().map_err(|e| e.to_string())?;
    let name = data
        .get("key")
        .and_then(Value::as_str)
        .ok_or("the event names no object (`key`)")?;
    let photo = blob::container("photos")
        .and_then(|photos| photos.get(name))
        .map_err(|e| e.to_string())?;
    let Some(photo) = photo else {
        println!("thumbnail: {name} is gone already");
        return Ok(());
    };
    match half(&photo) {
        Ok(small) => {
            blob::container("thumbnails")
                .and_then(|thumbnails| thumbnails.put(name, &small))
                .map_err(|e| e.to_string())?;
            println!("thumbnail: {name}: {} → {} bytes", photo.len(), small.len());
        }
        Err(why) => println!("thumbnail: skipping {name}: {why}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_a_ppm() {
        // 3×2: the thumbnail is 2×1, pixels (0,0) and (2,0).
        let mut ppm = b"P6\n# made by hand\n3 2\n255\n".to_vec();
        ppm.extend((0..18).map(|i| i as u8));
        let mut expected = b"P6\n2 1\n255\n".to_vec();
        expected.extend([0, 1, 2, 6, 7, 8]);
        assert_eq!(half(&ppm).unwrap(), expected);
    }

    #[test]
    fn refuses_what_is_not_a_binary_ppm() {
        assert!(half(b"\x89PNG").unwrap_err().contains("not a binary PPM"));
        assert!(
            half(b"P6\n2 2\n255\n\0\0")
                .unwrap_err()
                .contains("truncated")
        );
        assert!(half(b"P6\n2").unwrap_err().contains("ends early"));
        assert!(half(b"P6\n99999999999 99999999999\n255\n").is_err());
    }
}

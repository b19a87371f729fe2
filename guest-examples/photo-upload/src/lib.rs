//! `photo-upload`: the upload half of the photo pipeline.
//!
//! - `PUT /photos/NAME` (or `POST`) stores the body in the blob store
//!   `photos` → `201`. The store publishes a `dev.wisp.blob.object.finalized`
//!   event to topic `photo-events`, and `thumbnail` writes a half-size copy
//!   into the blob store `thumbnails`.
//! - `GET /photos/NAME` reads the photo back; `GET /photos/NAME?size=thumbnail`
//!   its thumbnail (`404` until `thumbnail` has made it).

use wisp_sdk::{Method, Request, Response, blob, http_handler};

/// The object name in `…/photos/NAME`.
fn name_of(path: &str) -> Option<&str> {
    let name = path.split_once("/photos/")?.1;
    (!name.is_empty() && name.len() <= 200).then_some(name)
}

#[http_handler]
fn handle(mut req: Request) -> Response {
    let path = req.path().to_string();
    let Some(name) = name_of(&path) else {
        return Response::text("use /photos/NAME\n").with_status(404);
    };
    let done = match req.method() {
        Method::Put | Method::Post => {
            let body = match req.body() {
                Ok(body) => body.to_vec(),
                Err(e) => return Response::text(format!("{e}\n")).with_status(400),
            };
            blob::container("photos")
                .and_then(|photos| photos.put(name, &body))
                .map(|()| {
                    Response::text(format!("stored {name} ({} bytes)\n", body.len()))
                        .with_status(201)
                })
        }
        Method::Get => {
            let thumbnail = req.query_param("size").as_deref() == Some("thumbnail");
            let store = if thumbnail { "thumbnails" } else { "photos" };
            blob::container(store)
                .and_then(|c| c.get(name))
                .map(|found| match found {
                    Some(bytes) => Response::bytes("image/x-portable-pixmap", bytes),
                    None => {
                        Response::text(format!("no {name} in {store} (yet)\n")).with_status(404)
                    }
                })
        }
        _ => return Response::text("use PUT or GET\n").with_status(405),
    };
    done.unwrap_or_else(|e| Response::text(format!("{e}\n")).with_status(500))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_after_photos() {
        assert_eq!(name_of("/photos/2024/cat.ppm"), Some("2024/cat.ppm"));
        assert_eq!(name_of("/photos/"), None);
        assert_eq!(name_of("/elsewhere"), None);
    }
}

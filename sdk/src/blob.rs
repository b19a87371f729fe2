//! Blob storage through `wasi:blobstore` (`0.2.0-draft`): the containers
//! the function is granted in `wisp.toml` (`blobstore = ["photos"]`), by
//! name. An object is a name (any text, `/` included) and bytes; a write
//! replaces it whole, and readers never see half of one.
//!
//! ```no_run
//! let photos = wisp_sdk::blob::container("photos")?;
//! photos.put("2024/cat.jpg", b"...")?;
//! let bytes = photos.get("2024/cat.jpg")?;
//! let first_kib = photos.get_range("2024/cat.jpg", 0, 1023)?;
//! for name in photos.list("2024/")? {
//!     println!("{name}");
//! }
//! # Ok::<(), wisp_sdk::blob::Error>(())
//! ```
//!
//! Large objects stream: [`Container::writer`] is an [`std::io::Write`]
//! whose bytes become the object when [`Writer::finish`] returns; dropped
//! unfinished, it stores nothing.
//!
//! Outside a component (a `cargo test` of your handler on the host), every
//! container is an empty in-memory map of the current thread.

use std::io;

/// Why a call failed, in the host's words (the interface's errors are
/// text): an ungranted container says `access denied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// An object's size and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// A container of objects.
pub struct Container {
    inner: imp::Container,
}

/// The container `name`; an error (access denied) unless the function is
/// granted it.
pub fn container(name: &str) -> Result<Container, Error> {
    imp::Container::get(name).map(|inner| Container { inner })
}

impl Container {
    /// The whole object, `None` if there is none.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        if !self.exists(name)? {
            return Ok(None);
        }
        self.get_range(name, 0, u64::MAX).map(Some)
    }

    /// Bytes `start..=end` of the object (`end` past its end reads to the
    /// end); an error if there is no such object.
    pub fn get_range(&self, name: &str, start: u64, end: u64) -> Result<Vec<u8>, Error> {
        self.inner.get_range(name, start, end)
    }

    /// Replaces (or creates) the object with `bytes`.
    pub fn put(&self, name: &str, bytes: impl AsRef<[u8]>) -> Result<(), Error> {
        let mut writer = self.writer(name)?;
        io::Write::write_all(&mut writer, bytes.as_ref()).map_err(|e| Error(e.to_string()))?;
        writer.finish()
    }

    /// A stream that becomes the object `name` when finished.
    pub fn writer(&self, name: &str) -> Result<Writer, Error> {
        self.inner.writer(name).map(|inner| Writer { inner })
    }

    /// Removes the object; removing a missing one is no error.
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        self.inner.delete(name)
    }

    pub fn exists(&self, name: &str) -> Result<bool, Error> {
        self.inner.exists(name)
    }

    /// The names of the objects that start with `prefix` (`""`: all),
    /// sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut names = self.inner.list()?;
        names.retain(|n| n.starts_with(prefix));
        names.sort_unstable();
        Ok(names)
    }

    pub fn info(&self, name: &str) -> Result<ObjectInfo, Error> {
        self.inner.info(name)
    }
}

/// An object being written; see [`Container::writer`].
pub struct Writer {
    inner: imp::Writer,
}

impl Writer {
    /// Stores what was written as the object, whole.
    pub fn finish(self) -> Result<(), Error> {
        self.inner.finish()
    }
}

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::io;

    use super::{Error, ObjectInfo};
    use crate::wasm::state_bindings::wasi::blobstore::{blobstore, container, types};
    use crate::wasm::state_bindings::wasi::io::streams::{OutputStream, StreamError};

    pub struct Container(container::Container);

    impl Container {
        pub fn get(name: &str) -> Result<Container, Error> {
            blobstore::get_container(name).map(Container).map_err(Error)
        }

        pub fn get_range(&self, name: &str, start: u64, end: u64) -> Result<Vec<u8>, Error> {
            let value = self.0.get_data(name, start, end).map_err(Error)?;
            types::IncomingValue::incoming_value_consume_sync(value).map_err(Error)
        }

        pub fn writer(&self, name: &str) -> Result<Writer, Error> {
            let value = types::OutgoingValue::new_outgoing_value();
            let stream = value
                .outgoing_value_write_body()
                .map_err(|()| Error("the host gave no stream to write the object to".into()))?;
            self.0.write_data(name, &value).map_err(Error)?;
            Ok(Writer {
                stream: Some(stream),
                value,
            })
        }

        pub fn delete(&self, name: &str) -> Result<(), Error> {
            self.0.delete_object(name).map_err(Error)
        }

        pub fn exists(&self, name: &str) -> Result<bool, Error> {
            self.0.has_object(name).map_err(Error)
        }

        pub fn list(&self) -> Result<Vec<String>, Error> {
            let stream = self.0.list_objects().map_err(Error)?;
            let mut names = Vec::new();
            loop {
                let (page, end) = stream.read_stream_object_names(1000).map_err(Error)?;
                names.extend(page);
                if end {
                    return Ok(names);
                }
            }
        }

        pub fn info(&self, name: &str) -> Result<ObjectInfo, Error> {
            let meta = self.0.object_info(name).map_err(Error)?;
            Ok(ObjectInfo {
                size: meta.size,
                created_at: meta.created_at,
            })
        }
    }

    /// The value and its stream; the stream (a child of the value) is
    /// declared first, so it is dropped first.
    pub struct Writer {
        stream: Option<OutputStream>,
        value: types::OutgoingValue,
    }

    fn io_error(e: StreamError) -> io::Error {
        match e {
            StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
            StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"),
        }
    }

    impl Writer {
        pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let stream = self.stream.as_ref().expect("the stream lives until finish");
            let mut room = stream.check_write().map_err(io_error)?;
            while room == 0 {
                stream.subscribe().block();
                room = stream.check_write().map_err(io_error)?;
            }
            let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            stream.write(&buf[..n]).map_err(io_error)?;
            Ok(n)
        }

        pub fn finish(mut self) -> Result<(), Error> {
            if let Some(stream) = self.stream.take() {
                stream
                    .blocking_flush()
                    .map_err(|e| Error(io_error(e).to_string()))?;
            }
            types::OutgoingValue::finish(self.value).map_err(Error)
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::io;

    use super::{Error, ObjectInfo};

    thread_local! {
        static DATA: RefCell<BTreeMap<(String, String), Vec<u8>>> = RefCell::default();
    }

    /// A container of the current thread's in-memory data.
    pub struct Container(String);

    impl Container {
        pub fn get(name: &str) -> Result<Container, Error> {
            Ok(Container(name.to_string()))
        }

        fn at(&self, name: &str) -> (String, String) {
            (self.0.clone(), name.to_string())
        }

        pub fn get_range(&self, name: &str, start: u64, end: u64) -> Result<Vec<u8>, Error> {
            let bytes = DATA
                .with_borrow(|d| d.get(&self.at(name)).cloned())
                .ok_or_else(|| Error(format!("no object `{name}` in container `{}`", self.0)))?;
            let len = bytes.len() as u64;
            let (start, end) = (start.min(len), end.saturating_add(1).min(len));
            Ok(bytes[start as usize..end.max(start) as usize].to_vec())
        }

        pub fn writer(&self, name: &str) -> Result<Writer, Error> {
            Ok(Writer {
                at: self.at(name),
                bytes: Vec::new(),
            })
        }

        pub fn delete(&self, name: &str) -> Result<(), Error> {
            DATA.with_borrow_mut(|d| d.remove(&self.at(name)));
            Ok(())
        }

        pub fn exists(&self, name: &str) -> Result<bool, Error> {
            Ok(DATA.with_borrow(|d| d.contains_key(&self.at(name))))
        }

        pub fn list(&self) -> Result<Vec<String>, Error> {
            Ok(DATA.with_borrow(|d| {
                d.keys()
                    .filter(|(container, _)| *container == self.0)
                    .map(|(_, name)| name.clone())
                    .collect()
            }))
        }

        pub fn info(&self, name: &str) -> Result<ObjectInfo, Error> {
            let size = self.get_range(name, 0, u64::MAX)?.len() as u64;
            Ok(ObjectInfo {
                size,
                created_at: 0,
            })
        }
    }

    pub struct Writer {
        at: (String, String),
        bytes: Vec<u8>,
    }

    impl Writer {
        pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }

        pub fn finish(self) -> Result<(), Error> {
            DATA.with_borrow_mut(|d| d.insert(self.at, self.bytes));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_containers_store_list_and_range() {
        let photos = super::container("photos").unwrap();
        photos.put("a/1.txt", "hello").unwrap();
        photos.put("b.txt", "x").unwrap();
        assert_eq!(
            photos.get("a/1.txt").unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(photos.get_range("a/1.txt", 1, 3).unwrap(), b"ell");
        assert_eq!(photos.list("a/").unwrap(), ["a/1.txt"]);
        assert_eq!(photos.info("a/1.txt").unwrap().size, 5);
        let unfinished = photos.writer("c").unwrap();
        drop(unfinished);
        assert!(!photos.exists("c").unwrap());
        photos.delete("a/1.txt").unwrap();
        assert_eq!(photos.get("a/1.txt").unwrap(), None);
        assert!(
            super::container("other")
                .unwrap()
                .list("")
                .unwrap()
                .is_empty()
        );
    }
}

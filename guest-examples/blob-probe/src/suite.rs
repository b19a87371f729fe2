//! The blob suite: every wasi:blobstore function, the same checks through
//! each version's bindings (the two packages differ only in version, so one
//! macro writes the suite for each). It ends with `clear`, so run it on a
//! container of its own.

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn e<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err:?}")
}

macro_rules! suite {
    ($name:ident, $bs:path) => {
        pub fn $name(store: &str, p: &str) -> Result<(), String> {
            use bs::blobstore as b;
            use bs::container::Container;
            use bs::types::{IncomingValue, OutgoingValue};
            use $bs as bs;

            let k = |name: &str| format!("{p}{}-{name}", stringify!($name));
            let write = |c: &Container, name: &str, bytes: &[u8], bind_first: bool| {
                let value = OutgoingValue::new_outgoing_value();
                let stream = value.outgoing_value_write_body().map_err(e("write-body"))?;
                check(
                    value.outgoing_value_write_body().is_err(),
                    "a second write-body is refused",
                )?;
                if bind_first {
                    c.write_data(name, &value).map_err(e("write-data"))?;
                }
                for chunk in bytes.chunks(4096) {
                    stream
                        .blocking_write_and_flush(chunk)
                        .map_err(e("blocking-write-and-flush"))?;
                }
                drop(stream);
                if !bind_first {
                    c.write_data(name, &value).map_err(e("write-data"))?;
                }
                OutgoingValue::finish(value).map_err(e("finish"))
            };
            let read = |c: &Container, name: &str, start: u64, end: u64| {
                let value = c.get_data(name, start, end).map_err(e("get-data"))?;
                IncomingValue::incoming_value_consume_sync(value).map_err(e("consume-sync"))
            };

            let c = b::get_container(store).map_err(e("get-container"))?;
            check(c.name().map_err(e("name"))? == store, "name")?;
            check(c.info().map_err(e("info"))?.name == store, "info")?;
            check(
                b::container_exists(store).map_err(e("container-exists"))?,
                "container-exists",
            )?;
            let refused = b::create_container(store).map(drop).unwrap_err();
            check(
                refused.contains("already exists"),
                "create-container refused",
            )?;
            check(
                b::delete_container(store).is_err(),
                "delete-container refused",
            )?;

            // Both orders of write-data and the bytes; names with `/`, `..`.
            let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            write(&c, &k("a"), b"hello, blob", true)?;
            write(&c, &k("../../escape"), &big, false)?;
            check(
                read(&c, &k("a"), 0, u64::MAX)? == b"hello, blob",
                "whole read",
            )?;
            check(read(&c, &k("a"), 7, 10)? == b"blob", "range read")?;
            check(read(&c, &k("a"), 7, 1000)? == b"blob", "range past the end")?;
            check(read(&c, &k("a"), 50, 60)?.is_empty(), "range after the end")?;
            check(c.get_data(&k("a"), 5, 4).is_err(), "start after end")?;
            check(c.get_data(&k("none"), 0, 10).is_err(), "missing object")?;
            check(
                read(&c, &k("../../escape"), 0, u64::MAX)? == big,
                "100 kB read",
            )?;

            // The async body, read through wasi:io.
            let value = c
                .get_data(&k("../../escape"), 1000, 99_999)
                .map_err(e("get-data"))?;
            check(value.size() == 99_000, "size")?;
            let stream =
                IncomingValue::incoming_value_consume_async(value).map_err(e("consume-async"))?;
            let mut streamed = Vec::new();
            while let Ok(chunk) = stream.blocking_read(65536) {
                streamed.extend(chunk);
            }
            check(streamed == big[1000..], "streamed range")?;

            // A value read keeps its bytes when the object changes after.
            let held = c.get_data(&k("a"), 0, u64::MAX).map_err(e("get-data"))?;
            write(&c, &k("a"), b"replaced", true)?;
            let old = IncomingValue::incoming_value_consume_sync(held).map_err(e("consume"))?;
            check(old == b"hello, blob", "an open value keeps the old bytes")?;
            check(read(&c, &k("a"), 0, u64::MAX)? == b"replaced", "replaced")?;

            let info = c.object_info(&k("a")).map_err(e("object-info"))?;
            check(info.size == 8 && info.container == store, "object-info")?;
            check(
                info.created_at > 1_700_000_000,
                "created-at is epoch seconds",
            )?;
            check(
                c.has_object(&k("a")).map_err(e("has-object"))?,
                "has-object",
            )?;
            check(
                !c.has_object(&k("none")).map_err(e("has-object"))?,
                "has no object",
            )?;

            // A value finished without write-data goes nowhere.
            let value = OutgoingValue::new_outgoing_value();
            check(
                OutgoingValue::finish(value).is_err(),
                "finish without write-data",
            )?;

            let src = |name: &str| b::ObjectId {
                container: store.into(),
                object: k(name),
            };
            b::copy_object(&src("a"), &src("copy")).map_err(e("copy-object"))?;
            b::move_object(&src("copy"), &src("moved")).map_err(e("move-object"))?;
            check(
                read(&c, &k("moved"), 0, u64::MAX)? == b"replaced",
                "copied, moved",
            )?;
            check(
                !c.has_object(&k("copy")).map_err(e("has-object"))?,
                "moved away",
            )?;

            let names = c.list_objects().map_err(e("list-objects"))?;
            let mut listed = Vec::new();
            loop {
                let (page, end) = names.read_stream_object_names(1).map_err(e("read-names"))?;
                check(page.len() <= 1, "pages hold at most what was asked")?;
                listed.extend(page);
                if end {
                    break;
                }
            }
            for name in ["a", "../../escape", "moved"] {
                check(listed.contains(&k(name)), "list-objects finds the objects")?;
            }
            let names = c.list_objects().map_err(e("list-objects"))?;
            let (skipped, _) = names.skip_stream_object_names(2).map_err(e("skip"))?;
            check(skipped == 2, "skip")?;

            c.delete_object(&k("none")).map_err(e("delete missing"))?;
            c.delete_objects(&[k("a"), k("moved")])
                .map_err(e("delete-objects"))?;
            check(!c.has_object(&k("a")).map_err(e("has-object"))?, "deleted")?;
            c.clear().map_err(e("clear"))?;
            let names = c.list_objects().map_err(e("list-objects"))?;
            let (left, end) = names
                .read_stream_object_names(10)
                .map_err(e("read-names"))?;
            check(left.is_empty() && end, "clear empties the container")
        }
    };
}

suite!(draft, crate::bindings::wasi::blobstore0_2_0_draft);
suite!(spin, crate::bindings::wasi::blobstore0_2_0_draft_2024_09_01);

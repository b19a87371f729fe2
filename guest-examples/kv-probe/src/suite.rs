//! The key-value suite: the same checks through each wasi:keyvalue draft,
//! so every backend is held to one contract from the guest's side.

use crate::bindings::wasi::keyvalue0_2_0_draft as draft;
use crate::bindings::wasi::keyvalue0_2_0_draft2 as draft2;

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

pub fn draft(store: &str, p: &str) -> Result<(), String> {
    use draft::{atomics, batch, store as s};
    let b = s::open(store).map_err(e("open"))?;
    let k = |name: &str| format!("{p}draft-{name}");
    b.set(&k("a"), b"one").map_err(e("set"))?;
    check(
        b.get(&k("a")).map_err(e("get"))? == Some(b"one".to_vec()),
        "get after set",
    )?;
    check(b.exists(&k("a")).map_err(e("exists"))?, "exists after set")?;
    check(
        !b.exists(&k("none")).map_err(e("exists"))?,
        "missing key exists",
    )?;
    b.delete(&k("a")).map_err(e("delete"))?;
    b.delete(&k("a")).map_err(e("delete twice"))?;
    check(
        b.get(&k("a")).map_err(e("get"))?.is_none(),
        "get after delete",
    )?;

    batch::set_many(&b, &[(k("x"), b"1".to_vec()), (k("y"), b"2".to_vec())])
        .map_err(e("set-many"))?;
    let got = batch::get_many(&b, &[k("x"), k("y"), k("none")]).map_err(e("get-many"))?;
    check(
        got == vec![
            Some((k("x"), b"1".to_vec())),
            Some((k("y"), b"2".to_vec())),
            None,
        ],
        "get-many",
    )?;
    batch::delete_many(&b, &[k("x"), k("y")]).map_err(e("delete-many"))?;
    check(!b.exists(&k("x")).map_err(e("exists"))?, "delete-many")?;

    check(
        atomics::increment(&b, &k("n"), 5).map_err(e("increment"))? == 5,
        "increment from absent",
    )?;
    check(
        atomics::increment(&b, &k("n"), 2).map_err(e("increment"))? == 7,
        "increment",
    )?;
    check(
        b.get(&k("n")).map_err(e("get"))? == Some(b"7".to_vec()),
        "counters are decimal text",
    )?;
    b.set(&k("text"), b"hello").map_err(e("set"))?;
    check(
        matches!(
            atomics::increment(&b, &k("text"), 1),
            Err(s::Error::Other(_))
        ),
        "incrementing text is an error",
    )?;

    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = b.list_keys(cursor).map_err(e("list-keys"))?;
        keys.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    check(
        keys.contains(&k("n")) && keys.contains(&k("text")),
        "list-keys finds the keys",
    )?;
    batch::delete_many(&b, &[k("n"), k("text")]).map_err(e("clean up"))
}

pub fn draft2(store: &str, p: &str) -> Result<(), String> {
    use draft2::{atomics, batch, store as s};
    let b = s::open(store).map_err(e("open"))?;
    let k = |name: &str| format!("{p}draft2-{name}");
    b.set(&k("a"), b"one").map_err(e("set"))?;
    check(
        b.get(&k("a")).map_err(e("get"))? == Some(b"one".to_vec()),
        "get after set",
    )?;
    b.delete(&k("a")).map_err(e("delete"))?;
    check(
        !b.exists(&k("a")).map_err(e("exists"))?,
        "exists after delete",
    )?;

    batch::set_many(&b, &[(k("x"), b"1".to_vec())]).map_err(e("set-many"))?;
    let got = batch::get_many(&b, &[k("x"), k("none")]).map_err(e("get-many"))?;
    check(
        got == vec![(k("x"), Some(b"1".to_vec())), (k("none"), None)],
        "get-many",
    )?;
    batch::delete_many(&b, &[k("x")]).map_err(e("delete-many"))?;

    check(
        atomics::increment(&b, &k("n"), -3).map_err(e("increment"))? == -3,
        "negative increment",
    )?;
    check(
        atomics::increment(&b, &k("n"), 10).map_err(e("increment"))? == 7,
        "increment",
    )?;

    // Compare-and-swap: succeeds on what it saw, fails (with a fresh
    // handle) once someone else wrote, then succeeds on the fresh handle.
    let cas = atomics::Cas::new(&b, &k("c")).map_err(e("cas new"))?;
    check(
        cas.current().map_err(e("current"))?.is_none(),
        "cas sees absent",
    )?;
    atomics::swap(cas, b"1").map_err(e("swap"))?;
    let cas = atomics::Cas::new(&b, &k("c")).map_err(e("cas new"))?;
    b.set(&k("c"), b"2").map_err(e("set"))?;
    let fresh = match atomics::swap(cas, b"x") {
        Err(atomics::CasError::CasFailed(fresh)) => fresh,
        other => return Err(format!("swap after a concurrent write: {other:?}")),
    };
    check(
        fresh.current().map_err(e("current"))? == Some(b"2".to_vec()),
        "fresh handle sees the write",
    )?;
    atomics::swap(fresh, b"3").map_err(e("swap fresh"))?;
    check(
        b.get(&k("c")).map_err(e("get"))? == Some(b"3".to_vec()),
        "swap wrote",
    )?;

    let page = b.list_keys(None).map_err(e("list-keys"))?;
    let mut keys = page.keys;
    let mut cursor = page.cursor;
    while let Some(c) = cursor {
        let page = b.list_keys(Some(&c)).map_err(e("list-keys"))?;
        keys.extend(page.keys);
        cursor = page.cursor;
    }
    check(keys.contains(&k("c")), "list-keys finds the keys")?;
    batch::delete_many(&b, &[k("n"), k("c")]).map_err(e("clean up"))
}

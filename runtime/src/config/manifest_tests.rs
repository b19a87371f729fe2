//! Unit tests of `manifest.rs`: parsing, errors with file:line and key,
//! paths relative to the manifest, build sections.

use super::*;
use crate::config::ByteSize;
use std::time::Duration;

fn parse(text: &str) -> Result<Manifest> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.wasm"), b"x").unwrap();
    std::fs::write(dir.path().join("b.wasm"), b"x").unwrap();
    Manifest::parse(&dir.path().join("wisp.toml"), text)
}

#[test]
fn parses_a_full_manifest() {
    let m = parse(
        r#"
[server]
listen = "127.0.0.1:3000"
admin = "127.0.0.1:3001"

[[function]]
name = "hello"
component = "a.wasm"
route = "/hello"
memory = "64Mi"
timeout = "5s"
max_instances = 100
env = { GREETING = "hi" }
allowed_outbound_hosts = ["http://127.0.0.1:9000"]
"#,
    )
    .unwrap();
    assert_eq!(m.server.listen.port(), 3000);
    assert_eq!(m.functions[0].memory.bytes(), 64 << 20);
    assert!(m.functions[0].component.ends_with("a.wasm"));
    assert_eq!(m.server.max_connections, None);
    assert_eq!(m.server.request_body_timeout.0, Duration::from_secs(30));
    assert_eq!(m.server.max_buffered_body, ByteSize::mib(256));
}

#[test]
fn errors_name_line_and_key() {
    let cases = [
        (
            "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nmemroy = \"1Mi\"\n",
            "memroy",
        ),
        (
            "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nmemory = \"64Q\"\n",
            "line 4",
        ),
        (
            "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\ntimeout = \"soon\"\n",
            "line 4",
        ),
        (
            "[[function]]\nname = \"a\"\ncomponent = \"missing.wasm\"\n",
            ":3: function `a`: `component`: no file",
        ),
        (
            "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\n\n[[function]]\nname = \"a\"\ncomponent = \"b.wasm\"\nroute = \"/b\"\n",
            ":6: function `a`: `name`: duplicate name",
        ),
        (
            "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nroute = \"/x\"\n[[function]]\nname = \"b\"\ncomponent = \"b.wasm\"\nroute = \"/x/\"\n",
            ":8: function `b`: `route`: route `/x` is already served by function `a`",
        ),
        ("[server]\nkeep_revisions = 0\n", "nonzero"),
        ("[server]\ncache_max_size = \"lots\"\n", "invalid size"),
        ("[server]\nmax_connections = 0\n", "max_connections = 0"),
        ("[server]\nidle_timeout = \"0s\"\n", "idle_timeout"),
        (
            "[[store]]\nname = \"photos\"\nkind = \"sql\"\n",
            ":3: store `photos`: `kind`: `sql` is not a store kind Wisp serves; supported: keyvalue, blobstore",
        ),
        (
            "[[store]]\nname = \"cache\"\nkind = \"keyvalue\"\n[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nkeyvalue = [\"cach\"]\n",
            ":7: function `a`: `keyvalue`: no key-value store `cach`",
        ),
        (
            "[[secret]]\nname = \"k\"\nenv = \"K\"\n[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nsecrets = [\"j\"]\n",
            ":7: function `a`: `secrets`: no secret `j`",
        ),
    ];
    for (text, expected) in cases {
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
        assert!(err.contains("wisp.toml"), "no file name in: {err}");
    }
}

#[test]
fn a_build_section_is_taken_out_of_the_spec_and_may_precede_its_component() {
    let text = "[[function]]\nname = \"f\"\ncomponent = \"out/f.wasm\"\n[function.build]\ncommand = \"make\"\nwatch = [\"src/**/*.c\"]\ntoolchain = \"c\"\n";
    let err = format!("{:#}", parse(text).unwrap_err());
    assert!(err.contains("build it with `wisp build`"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let m = Manifest::parse_with(
        &dir.path().join("wisp.toml"),
        text,
        Components::MayBeUnbuilt,
    )
    .unwrap();
    assert_eq!(m.functions[0].build, None);
    let build = &m.builds["f"];
    assert_eq!(build.command, "make");
    assert_eq!(build.toolchain, Some(crate::config::Toolchain::C));
    let bad = text.replace("src/**/*.c", "src/[");
    let err = format!("{:#}", parse(&bad).unwrap_err());
    assert!(
        err.contains(": function `f`: `watch`: [function.build] `src/[` is not a glob"),
        "{err}"
    );
}

#[test]
fn token_file_and_files_root_are_relative_to_the_manifest() {
    let m = parse("[server]\nadmin_token_file = \"secret/token\"\nfiles_root = \"www\"\n").unwrap();
    let base = m.server.state_dir.unwrap().parent().unwrap().to_path_buf();
    assert_eq!(m.server.admin_token_file, Some(base.join("secret/token")));
    assert_eq!(m.server.files_root, Some(base.join("www")));
}

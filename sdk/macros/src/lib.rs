//! Attribute macros of `wisp-sdk`; see `wisp_sdk::http_handler`,
//! `wisp_sdk::event_handler` and `wisp_sdk::p3::http_handler` for their
//! documentation.
//!
//! Written against `proc_macro` alone (no syn/quote): the input is one `fn`
//! and an optional `init = path`, and skipping those dependencies keeps the
//! first build of every function fast.

use proc_macro::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};

/// Exports a `fn(Request) -> impl IntoResponse` as the component's HTTP
/// handler. Documented on `wisp_sdk::http_handler`.
#[proc_macro_attribute]
pub fn http_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    export(Flavor::P2, "respond_http", attr, item)
}

/// Exports an `async fn(Request) -> impl IntoResponse` as the component's
/// `wasi:http/handler@0.3.0`. Re-exported and documented as
/// `wisp_sdk::p3::http_handler`.
#[proc_macro_attribute]
pub fn p3_http_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    export(Flavor::P3, "respond_http", attr, item)
}

/// Exports a `fn(CloudEvent) -> impl EventOutcome` as the component's
/// CloudEvents handler. Documented on `wisp_sdk::event_handler`.
#[proc_macro_attribute]
pub fn event_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    export(Flavor::P2, "respond_event", attr, item)
}

/// Which world a handler is exported on: `wasi:http@0.2` (a plain `fn`) or
/// `wasi:http@0.3` (an `async fn`).
enum Flavor {
    P2,
    P3,
}

/// Emits the function unchanged, followed by
/// `::wisp_sdk::__export!(respond, name, init);` (`__export_p3!` for p3),
/// which does the real work in ordinary `macro_rules!` where it is easier
/// to read.
fn export(flavor: Flavor, respond: &str, attr: TokenStream, item: TokenStream) -> TokenStream {
    let init = match parse_init(attr) {
        Ok(init) => init,
        Err((span, message)) => return compile_error(span, message),
    };
    let Some((name, is_async)) = fn_name(item.clone()) else {
        return compile_error(Span::call_site(), "this attribute goes on a `fn`");
    };
    match (&flavor, is_async) {
        (Flavor::P2, true) => {
            return compile_error(
                name.span(),
                "this handler is a plain `fn`; async HTTP handlers use `#[wisp_sdk::p3::http_handler]`",
            );
        }
        (Flavor::P3, false) => {
            return compile_error(name.span(), "a p3 handler is an `async fn`");
        }
        _ => {}
    }
    let target = match flavor {
        Flavor::P2 => "__export",
        Flavor::P3 => "__export_p3",
    };
    let mut args: Vec<TokenTree> = vec![
        Ident::new(respond, Span::call_site()).into(),
        Punct::new(',', Spacing::Alone).into(),
        name.into(),
        Punct::new(',', Spacing::Alone).into(),
    ];
    args.extend(init);
    let mut out = item;
    out.extend(path_tokens(&["wisp_sdk", target]));
    out.extend([
        TokenTree::from(Punct::new('!', Spacing::Alone)),
        Group::new(Delimiter::Parenthesis, args.into_iter().collect()).into(),
        Punct::new(';', Spacing::Alone).into(),
    ]);
    out
}

/// `init = some::path` becomes `Some(some::path as fn())`, nothing becomes
/// `None`.
fn parse_init(attr: TokenStream) -> Result<Vec<TokenTree>, (Span, &'static str)> {
    let mut tokens = attr.into_iter();
    let Some(first) = tokens.next() else {
        return Ok(path_tokens(&["core", "option", "Option", "None"]));
    };
    const USAGE: &str = "expected nothing or `init = path::to::function`";
    match (&first, tokens.next()) {
        (TokenTree::Ident(key), Some(TokenTree::Punct(eq)))
            if key.to_string() == "init" && eq.as_char() == '=' => {}
        _ => return Err((first.span(), USAGE)),
    }
    let path: TokenStream = tokens.collect();
    if path.is_empty() {
        return Err((first.span(), USAGE));
    }
    let mut cast: TokenStream = path;
    cast.extend(
        [TokenTree::from(Ident::new("as", Span::call_site())), Ident::new("fn", Span::call_site()).into()]
            .into_iter()
            .chain([Group::new(Delimiter::Parenthesis, TokenStream::new()).into()]),
    );
    let mut some = path_tokens(&["core", "option", "Option", "Some"]);
    some.push(Group::new(Delimiter::Parenthesis, cast).into());
    Ok(some)
}

/// The identifier after the `fn` keyword (skipping attributes, `pub`, …),
/// and whether `async` came before it.
fn fn_name(item: TokenStream) -> Option<(Ident, bool)> {
    let mut tokens = item.into_iter();
    let mut is_async = false;
    while let Some(token) = tokens.next() {
        if let TokenTree::Ident(ident) = &token {
            match ident.to_string().as_str() {
                "async" => is_async = true,
                "fn" => {
                    return match tokens.next() {
                        Some(TokenTree::Ident(name)) => Some((name, is_async)),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
    }
    None
}

/// `::a::b::c` as tokens.
fn path_tokens(segments: &[&str]) -> Vec<TokenTree> {
    segments
        .iter()
        .flat_map(|segment| {
            [
                TokenTree::from(Punct::new(':', Spacing::Joint)),
                Punct::new(':', Spacing::Alone).into(),
                Ident::new(segment, Span::call_site()).into(),
            ]
        })
        .collect()
}

fn compile_error(span: Span, message: &str) -> TokenStream {
    let mut literal = proc_macro::Literal::string(message);
    literal.set_span(span);
    let mut out: TokenStream = path_tokens(&["core", "compile_error"]).into_iter().collect();
    out.extend([
        TokenTree::from(Punct::new('!', Spacing::Alone)),
        Group::new(Delimiter::Parenthesis, TokenTree::from(literal).into()).into(),
        Punct::new(';', Spacing::Alone).into(),
    ]);
    out
}

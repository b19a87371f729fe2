//! `__export!` and `__export_p3!`, what `#[http_handler]`,
//! `#[event_handler]` and `#[p3::http_handler]` expand to.
//!
//! `$respond` turns a [`Request`] into a [`Response`] using the user's
//! handler: `respond_http` or `respond_event` for p2, `p3::respond_http` (an
//! async one) for p3. Everything else (init hook, wasi:http plumbing, the
//! `wizer-initialize` export) is shared.
//!
//! [`Request`]: crate::Request
//! [`Response`]: crate::Response

/// On wasm: the component's exports.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($respond:ident, $handler:path, $init:expr) => {
        const _: () = {
            struct __WispFunction;

            $crate::__export_init!(__WispFunction, $init);

            impl $crate::__private::HandlerGuest for __WispFunction {
                fn handle(
                    request: $crate::__private::IncomingRequest,
                    out: $crate::__private::ResponseOutparam,
                ) {
                    $crate::__private::serve(request, out, $init, |request| {
                        $crate::__private::$respond(request, $handler)
                    })
                }
            }

            $crate::__private::export_function!(
                __WispFunction with_types_in $crate::__private::bindings
            );
        };
    };
}

/// On wasm: a p3 handler's exports, `wasi:http/handler@0.3.0` (through the
/// `wasip3` crate's bindings) and `wizer-initialize`.
#[cfg(all(target_arch = "wasm32", feature = "p3"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_p3 {
    ($respond:ident, $handler:path, $init:expr) => {
        const _: () = {
            struct __WispFunction;

            $crate::__export_init!(__WispFunction, $init);

            impl $crate::__private::p3::HandlerGuest for __WispFunction {
                async fn handle(
                    request: $crate::__private::p3::IncomingRequest,
                ) -> ::core::result::Result<
                    $crate::__private::p3::OutgoingResponse,
                    $crate::__private::p3::ErrorCode,
                > {
                    $crate::__private::p3::serve(request, $init, |request| {
                        $crate::__private::p3::$respond(request, $handler)
                    })
                    .await
                }
            }

            $crate::__private::p3::export_service!(
                __WispFunction with_types_in $crate::__private::p3::wasip3
            );
        };
    };
}

/// On wasm: the `wizer-initialize` export, running the init hook (p2 and p3).
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_init {
    ($function:ident, $init:expr) => {
        impl $crate::__private::InitGuest for $function {
            fn wizer_initialize() {
                $crate::__private::wizer_initialize($init)
            }
        }

        $crate::__private::export_init!($function with_types_in $crate::__private::init_bindings);
    };
}

/// Off wasm (unit tests, docs) there is nothing to export; the handler and
/// init hook are still type-checked and count as used, so a function crate
/// builds and tests cleanly on the host.
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($respond:ident, $handler:path, $init:expr) => {
        const _: fn($crate::Request) -> $crate::Response =
            |request| $crate::__private::$respond(request, $handler);
        const _: ::core::option::Option<fn()> = $init;
    };
}

/// Off wasm, for p3 handlers: as `__export!` above.
#[cfg(all(not(target_arch = "wasm32"), feature = "p3"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_p3 {
    ($respond:ident, $handler:path, $init:expr) => {
        const _: fn(
            $crate::Request,
        ) -> ::core::pin::Pin<
            ::std::boxed::Box<dyn ::core::future::Future<Output = $crate::Response>>,
        > = |request| ::std::boxed::Box::pin($crate::__private::p3::$respond(request, $handler));
        const _: ::core::option::Option<fn()> = $init;
    };
}

/// Pre-initialization for a command (`fn main`: a job, or a function with
/// `handler = "cgi"`): exports `wizer-initialize`, which runs `init`, so Wisp
/// runs the hook once at deploy and every run starts from the snapshot.
/// `main` calls [`init_once`](crate::init_once) first, which runs the hook
/// only when no snapshot did (another host, or `snapshot = false`).
///
/// ```
/// use std::sync::LazyLock;
///
/// static PRIMES: LazyLock<Vec<u32>> =
///     LazyLock::new(|| (2..10_000).filter(|n| (2..*n).all(|d| n % d != 0)).collect());
///
/// fn init() {
///     LazyLock::force(&PRIMES);
/// }
///
/// wisp_sdk::command_init!(init);
///
/// fn main() {
///     wisp_sdk::init_once(init);
///     // CGI variables and task variables are per run: read them here, not in init.
///     let path = std::env::var("PATH_INFO").unwrap_or_default();
///     print!("Content-Type: text/plain\r\n\r\n{} primes; {path}\n", PRIMES.len());
/// }
/// ```
#[cfg(target_arch = "wasm32")]
#[macro_export]
macro_rules! command_init {
    ($init:path) => {
        const _: () = {
            struct __WispCommand;

            $crate::__export_init!(__WispCommand, ::core::option::Option::Some($init as fn()));
        };
    };
}

/// Off wasm there is no snapshot to make; the hook is still type-checked.
#[cfg(not(target_arch = "wasm32"))]
#[macro_export]
macro_rules! command_init {
    ($init:path) => {
        const _: fn() = $init;
    };
}

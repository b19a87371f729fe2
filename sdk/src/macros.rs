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

//! `__export!`, what `#[http_handler]` and `#[event_handler]` expand to.
//!
//! `$respond` is `respond_http` or `respond_event`: it turns a [`Request`]
//! into a [`Response`] using the user's handler. Everything else (init hook,
//! wasi:http plumbing, the `wizer-initialize` export) is shared.
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

            impl $crate::__private::InitGuest for __WispFunction {
                fn wizer_initialize() {
                    $crate::__private::wizer_initialize($init)
                }
            }

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

;; Stand-ins for the `canonical_abi` imports of ruby.wasm's npm build (the
;; resource tables of the pre-component wit-bindgen ABI, which its JavaScript
;; host keeps). The command driver never holds a handle across calls, so a
;; handle is the value itself. wasm-merge links this module, named
;; `canonical_abi`, into ruby.wasm (scripts/build-guests).
(module
  (func (export "resource_new_rb-abi-value") (param i32) (result i32)
    local.get 0)
  (func (export "resource_get_rb-abi-value") (param i32) (result i32)
    local.get 0)
  ;; No JS value ever exists (see js-host-stubs.wat), so none is ever dropped.
  (func (export "resource_drop_js-abi-value") (param i32))
)

;; The command driver that makes ruby.wasm's npm build a WASI command.
;;
;; `@ruby/3.4-wasm-wasi` ships the interpreter as a *reactor* for its JavaScript
;; host: `_initialize`, then `ruby-init(args)`, `ruby-init-loadpath()` and
;; `rb-eval-string-protect(code)`, all in the pre-component wit-bindgen ABI. This
;; module is the `_start` that such a host would run: scripts/build-guests links
;; it into ruby+stdlib.wasm with wasm-merge (module name `ruby`) beside the
;; stand-ins for the JS-side imports (js-host-stubs.wat, canonical-abi-stubs.wat)
;; and keeps only `_start`, `wizer-initialize` and `memory` as exports. The
;; result is a WASI preview-1 command: `ruby.wasm [RUBY OPTIONS] SCRIPT [ARGS]`.
;;
;; _start, cold: argv = [prog, A1, ...]  ->  ruby-init(["ruby", "-EUTF-8",
;; "-e_=0", A1, ...]) (`-e_=0`: a no-op program, so options parse and
;; ARGV = [A1, ...]), then ruby-init-loadpath, then evaluate boot.rb (spliced in
;; below as @BOOT_RB@ by the build), which loads A1 and exits with the script's
;; status.
;;
;; wizer-initialize: boots the interpreter ahead of time, as
;; ruby-init(["ruby", "-EUTF-8", "-e_=0"]) and ruby-init-loadpath, for a host
;; that snapshots the instance afterwards (Wizer). _start then finds it booted
;; and hands the run's argv and environment to boot.rb as `$wisp_argv` and
;; `$wisp_environ` (NUL-terminated strings, as WASI gives them): wasi-libc read
;; its environment when the snapshot was made, and ruby-init has parsed no
;; argv of this run.
;;
;; Every string handed to Ruby is its own NUL-terminated cabi_realloc (malloc)
;; allocation, so the guest may keep it, free it or read it as a C string.
(module
  (import "ruby" "memory" (memory 0))
  (import "ruby" "_initialize" (func $initialize))
  (import "ruby" "cabi_realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
  (import "ruby" "ruby-init: func(args: list<string>) -> ()"
    (func $ruby_init (param i32 i32)))
  (import "ruby" "ruby-init-loadpath: func() -> ()" (func $ruby_init_loadpath))
  (import "ruby" "rb-eval-string-protect: func(str: string) -> tuple<handle<rb-abi-value>, s32>"
    (func $eval_string_protect (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; 1 once the interpreter is up: set by wizer-initialize, so a snapshot
  ;; taken after it starts with it set.
  (global $booted (mut i32) (i32.const 0))

  ;; Passive segments: copied into fresh allocations by memory.init, never
  ;; written over Ruby's memory at instantiation.
  (data $program "ruby")      ;; 4 bytes
  (data $encoding "-EUTF-8")  ;; 7 bytes
  (data $noop "-e_=0")        ;; 5 bytes
  (data $boot "@BOOT_RB@")
  (data $argv_prefix "$wisp_argv = \"")        ;; 14 bytes
  (data $environ_prefix "\"\n$wisp_environ = \"") ;; 19 bytes
  (data $globals_suffix "\"\n")                ;; 2 bytes
  (data $hex "0123456789abcdef")

  (func $alloc (param $align i32) (param $size i32) (result i32)
    (call $realloc (i32.const 0) (i32.const 0) (local.get $align) (local.get $size)))

  ;; A fresh NUL-terminated copy of LEN bytes at SRC.
  (func $dup (param $src i32) (param $len i32) (result i32)
    (local $dst i32)
    (local.set $dst (call $alloc (i32.const 1) (i32.add (local.get $len) (i32.const 1))))
    (memory.copy (local.get $dst) (local.get $src) (local.get $len))
    (i32.store8 (i32.add (local.get $dst) (local.get $len)) (i32.const 0))
    (local.get $dst))

  (func $strlen (param $s i32) (result i32)
    (local $p i32)
    (local.set $p (local.get $s))
    (block $end
      (loop $next
        (br_if $end (i32.eqz (i32.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $p) (local.get $s)))

  ;; LIST[I] = (PTR, LEN): one element of a canonical-ABI list<string>.
  (func $set (param $list i32) (param $i i32) (param $ptr i32) (param $len i32)
    (local $slot i32)
    (local.set $slot (i32.add (local.get $list) (i32.shl (local.get $i) (i32.const 3))))
    (i32.store (local.get $slot) (local.get $ptr))
    (i32.store offset=4 (local.get $slot) (local.get $len)))

  (func $fail_if (param $errno i32)
    (if (local.get $errno) (then (call $proc_exit (i32.const 71)))))  ;; EX_OSERR

  ;; Writes LEN bytes at SRC to DST as Ruby string escapes (`\xHH` each);
  ;; returns the end of what it wrote.
  (func $escape (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (local $end i32) (local $b i32)
    (local.set $end (i32.add (local.get $src) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $b (i32.load8_u (local.get $src)))
        (i32.store8 (local.get $dst) (i32.const 92))            ;; backslash
        (i32.store8 offset=1 (local.get $dst) (i32.const 120))  ;; x
        (memory.init $hex (i32.add (local.get $dst) (i32.const 2))
          (i32.shr_u (local.get $b) (i32.const 4)) (i32.const 1))
        (memory.init $hex (i32.add (local.get $dst) (i32.const 3))
          (i32.and (local.get $b) (i32.const 15)) (i32.const 1))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (br $next)))
    (local.get $dst))

  ;; Evaluates LEN bytes of Ruby at CODE (NUL-terminated) and exits: boot.rb
  ;; ends with Process.exit!, so returning means it raised outside its rescue
  ;; (tuple<handle, s32>: the state is non-zero then).
  (func $eval_and_exit (param $code i32) (param $len i32)
    (local $ret i32)
    (local.set $ret (call $eval_string_protect (local.get $code) (local.get $len)))
    (call $proc_exit (select (i32.const 1) (i32.const 0) (i32.load offset=4 (local.get $ret)))))

  ;; The first three arguments of ruby-init, in a LIST of room for N.
  (func $options (param $n i32) (result i32)
    (local $list i32) (local $s i32)
    (local.set $list (call $alloc (i32.const 4) (i32.shl (local.get $n) (i32.const 3))))

    (local.set $s (call $alloc (i32.const 1) (i32.const 5)))
    (memory.init $program (local.get $s) (i32.const 0) (i32.const 4))
    (i32.store8 offset=4 (local.get $s) (i32.const 0))
    (call $set (local.get $list) (i32.const 0) (local.get $s) (i32.const 4))

    (local.set $s (call $alloc (i32.const 1) (i32.const 8)))
    (memory.init $encoding (local.get $s) (i32.const 0) (i32.const 7))
    (i32.store8 offset=7 (local.get $s) (i32.const 0))
    (call $set (local.get $list) (i32.const 1) (local.get $s) (i32.const 7))

    (local.set $s (call $alloc (i32.const 1) (i32.const 6)))
    (memory.init $noop (local.get $s) (i32.const 0) (i32.const 5))
    (i32.store8 offset=5 (local.get $s) (i32.const 0))
    (call $set (local.get $list) (i32.const 2) (local.get $s) (i32.const 5))
    (local.get $list))

  (func (export "wizer-initialize")
    (call $initialize)
    (call $ruby_init (call $options (i32.const 3)) (i32.const 3))
    (call $ruby_init_loadpath)
    (global.set $booted (i32.const 1)))

  (func (export "_start")
    (local $sizes i32) (local $argc i32) (local $argv i32) (local $buf i32) (local $size i32)
    (local $n i32) (local $list i32) (local $i i32) (local $arg i32) (local $s i32)
    (local $envc i32) (local $envp i32) (local $envbuf i32) (local $envsize i32)
    (local $from i32) (local $code i32) (local $p i32)

    ;; The WASI argv.
    (local.set $sizes (call $alloc (i32.const 4) (i32.const 8)))
    (call $fail_if (call $args_sizes_get (local.get $sizes) (i32.add (local.get $sizes) (i32.const 4))))
    (local.set $argc (i32.load (local.get $sizes)))
    (local.set $size (i32.load offset=4 (local.get $sizes)))
    (local.set $argv (call $alloc (i32.const 4)
      (i32.shl (i32.add (local.get $argc) (i32.const 1)) (i32.const 2))))
    (local.set $buf (call $alloc (i32.const 1) (i32.add (local.get $size) (i32.const 1))))
    (call $fail_if (call $args_get (local.get $argv) (local.get $buf)))

    (if (global.get $booted)
      (then
        ;; Pre-initialized: argv[1..] and the environment go to boot.rb as
        ;; globals, escaped, ahead of boot.rb itself.
        (call $fail_if (call $environ_sizes_get (local.get $sizes) (i32.add (local.get $sizes) (i32.const 4))))
        (local.set $envc (i32.load (local.get $sizes)))
        (local.set $envsize (i32.load offset=4 (local.get $sizes)))
        (local.set $envp (call $alloc (i32.const 4)
          (i32.shl (i32.add (local.get $envc) (i32.const 1)) (i32.const 2))))
        (local.set $envbuf (call $alloc (i32.const 1) (i32.add (local.get $envsize) (i32.const 1))))
        (call $fail_if (call $environ_get (local.get $envp) (local.get $envbuf)))
        ;; argv[1..] is the tail of the argv buffer, from argv[1] (if any) on.
        (local.set $from (i32.add (local.get $buf) (local.get $size)))
        (if (i32.gt_u (local.get $argc) (i32.const 1))
          (then (local.set $from (i32.load offset=4 (local.get $argv)))))
        (local.set $n (i32.add (i32.const 36) (i32.const @BOOT_RB_LEN_NUL@)))
        (local.set $n (i32.add (local.get $n) (i32.shl
          (i32.add (i32.sub (i32.add (local.get $buf) (local.get $size)) (local.get $from))
                   (local.get $envsize))
          (i32.const 2))))
        (local.set $code (call $alloc (i32.const 1) (local.get $n)))
        (local.set $p (local.get $code))
        (memory.init $argv_prefix (local.get $p) (i32.const 0) (i32.const 14))
        (local.set $p (call $escape (i32.add (local.get $p) (i32.const 14)) (local.get $from)
          (i32.sub (i32.add (local.get $buf) (local.get $size)) (local.get $from))))
        (memory.init $environ_prefix (local.get $p) (i32.const 0) (i32.const 19))
        (local.set $p (call $escape (i32.add (local.get $p) (i32.const 19)) (local.get $envbuf) (local.get $envsize)))
        (memory.init $globals_suffix (local.get $p) (i32.const 0) (i32.const 2))
        (local.set $p (i32.add (local.get $p) (i32.const 2)))
        (memory.init $boot (local.get $p) (i32.const 0) (i32.const @BOOT_RB_LEN@))
        (local.set $p (i32.add (local.get $p) (i32.const @BOOT_RB_LEN@)))
        (i32.store8 (local.get $p) (i32.const 0))
        (call $eval_and_exit (local.get $code) (i32.sub (local.get $p) (local.get $code)))))

    (call $initialize)
    ;; ["ruby", "-EUTF-8", "-e_=0", argv[1], ..., argv[argc-1]]
    (local.set $n (i32.const 3))
    (if (i32.gt_u (local.get $argc) (i32.const 1))
      (then (local.set $n (i32.add (local.get $argc) (i32.const 2)))))
    (local.set $list (call $options (local.get $n)))
    (local.set $i (i32.const 1))
    (block $end
      (loop $next
        (br_if $end (i32.ge_u (local.get $i) (local.get $argc)))
        (local.set $arg (i32.load (i32.add (local.get $argv) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $s (call $strlen (local.get $arg)))
        (call $set (local.get $list) (i32.add (local.get $i) (i32.const 2))
          (call $dup (local.get $arg) (local.get $s)) (local.get $s))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    (call $ruby_init (local.get $list) (local.get $n))
    (call $ruby_init_loadpath)

    (local.set $s (call $alloc (i32.const 1) (i32.const @BOOT_RB_LEN_NUL@)))
    (memory.init $boot (local.get $s) (i32.const 0) (i32.const @BOOT_RB_LEN@))
    (i32.store8 offset=@BOOT_RB_LEN@ (local.get $s) (i32.const 0))
    (call $eval_and_exit (local.get $s) (i32.const @BOOT_RB_LEN@)))
)

//! The hook list grammar. A runtime declares each hooked function once, on
//! one line, inside its list macro (`npu_hooks!` in `npu.rs`):
//!
//! ```text
//! aclrtMalloc(dev_ptr: *mut *mut c_void, size: usize, policy: c_int) -> c_int = DeviceAlloc alloc(dev_ptr, size);
//! aclrtMallocCached(…same…) -> c_int = DeviceAlloc alloc(dev_ptr, size) else aclrtMalloc(dev_ptr, size, policy);
//! aclrtGetDevice(device: *mut i32) -> c_int = Context query();
//! ```
//!
//! C name and signature, the class (`ApiClass`), what the library does with
//! the call (`alloc(out, size)`, `free(pointer)`, `call(bytes)` or `call()`,
//! `set_device(device)`, or `query()`: looked up, never exported) and, when
//! the runtime may lack the function, the hook whose real function stands in
//! (torch_npu's own fallbacks). The list macro hands its lines to a callback:
//! `hook_table!` here makes the runtime's facts (`HOOKS`, `api`), and the
//! preload crate's callback makes the exported functions from the same lines.

/// Makes `api` (each hook's index, global across runtimes) and `HOOKS` (the
/// table, in list order) from a runtime's hook list.
#[macro_export]
#[doc(hidden)]
macro_rules! hook_table {
    (first = $first:expr; $(
        $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty = $class:ident $action:ident ( $($acted:ident),* )
            $( else $fallback:ident ( $($passed:ident),* ) )? ;
    )*) => {
        const FIRST: usize = $first;

        /// Positions in the list; `COUNT` is its length.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(usize)]
        enum Position { $($name,)* COUNT }

        /// Each hook's index, the same in the library, its recordings' tables
        /// and the CLI: the first index of this runtime plus its place in the list.
        #[allow(non_upper_case_globals)]
        pub mod api {
            $( pub const $name: usize = super::FIRST + super::Position::$name as usize; )*
        }

        /// Every hooked function, in list order.
        pub static HOOKS: [$crate::runtime::HookSpec; Position::COUNT as usize] = [$(
            $crate::runtime::HookSpec::new(
                match ::core::ffi::CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                    Ok(name) => name,
                    Err(_) => panic!("a hook name holds a NUL byte"),
                },
                $crate::runtime::ApiClass::$class,
                $crate::hook_table!(@exported $action),
            ),
        )*];
    };
    (@exported query) => { false };
    (@exported $action:ident) => { true };
}

//! The exported functions of every hooked call, made from each runtime's hook
//! list (`common::runtime::table` describes a line). Adding a hook is adding
//! its line to the list; this file turns each line into:
//!
//! - a module named after the function, with its C signature (`Real`) and how
//!   its real function is found (`real()`: the runtime's, or the stand-in the
//!   line names when the runtime lacks it);
//! - the exported function itself. Allocations need their caller: a
//!   two-instruction trampoline puts the return address in the argument
//!   register after the function's own arguments and jumps to the body, which
//!   gets it exactly, with no frame pointers and no unwinding;
//! - an entry of `hook_address`, which `dlsym` answers with.
//!
//! The bodies are the generic functions below: call the real function, and
//! when recording, tell the recorder what happened. What the caller gets back
//! (value and out-parameters) is always exactly the real function's.

use crate::preload::record::{self, Queries};
use common::runtime::Placement;

/// The argument register after `n` integer or pointer arguments, by
/// counting them (six at most on x86_64, where the seventh is on the stack).
macro_rules! caller_register {
    (x86_64;) => {
        "rdi"
    };
    (x86_64; $a:ident) => {
        "rsi"
    };
    (x86_64; $a:ident $b:ident) => {
        "rdx"
    };
    (x86_64; $a:ident $b:ident $c:ident) => {
        "rcx"
    };
    (x86_64; $a:ident $b:ident $c:ident $d:ident) => {
        "r8"
    };
    (x86_64; $a:ident $b:ident $c:ident $d:ident $e:ident) => {
        "r9"
    };
    (aarch64;) => {
        "x0"
    };
    (aarch64; $a:ident) => {
        "x1"
    };
    (aarch64; $a:ident $b:ident) => {
        "x2"
    };
    (aarch64; $a:ident $b:ident $c:ident) => {
        "x3"
    };
    (aarch64; $a:ident $b:ident $c:ident $d:ident) => {
        "x4"
    };
    (aarch64; $a:ident $b:ident $c:ident $d:ident $e:ident) => {
        "x5"
    };
    (aarch64; $a:ident $b:ident $c:ident $d:ident $e:ident $f:ident) => {
        "x6"
    };
}

/// The callback a runtime's hook list is expanded with (see `hooks/npu.rs`).
/// Needs in scope: `api` (the runtime's indexes), `c_void`, `c_int`.
macro_rules! hook_functions {
    (spec = $spec:expr; queries = $queries:expr; $(
        $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty = $class:ident $action:ident ( $($acted:ident),* )
            $( else $fallback:ident ( $($passed:ident),* ) )? ;
    )*) => {
        $(
            #[allow(non_snake_case)]
            pub mod $name {
                use super::*;

                /// The C signature.
                pub type Real = unsafe extern "C" fn($($ty),*) -> $ret;

                /// The real function, or the stand-in for it.
                #[inline(always)]
                pub fn real() -> Option<Real> {
                    // SAFETY: `Real` is this hook's C signature.
                    let found = unsafe { $crate::preload::hooks::real::typed::<Real>(api::$name) };
                    $( let found = found.or_else(|| super::$fallback::real().map(|_| stand_in as Real)); )?
                    found
                }

                $crate::preload::hooks::exports::stand_in!(
                    [$($fallback($($passed),*))?]; $spec; ($($arg: $ty),*) -> $ret
                );

                $crate::preload::hooks::exports::hook_body!(
                    $action; $spec; $queries; $name($($arg: $ty),*) -> $ret; ($($acted),*)
                );
            }

            $crate::preload::hooks::exports::hook_export!($action; $spec; $queries; $name($($arg: $ty),*) -> $ret; ($($acted),*));
        )*

        /// Our exported function for hook `index`, if it has one.
        pub fn hook_address(index: usize) -> Option<*mut c_void> {
            $( if index == api::$name {
                return $crate::preload::hooks::exports::hook_export!(@address $action $name);
            } )*
            None
        }
    };
}

/// The function the runtime has instead, called with this one's arguments
/// (for a line with `else`).
macro_rules! stand_in {
    ([]; $($rest:tt)*) => {};
    ([$fallback:ident($($passed:ident),*)]; $spec:expr; ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[allow(unused_variables)]
        unsafe extern "C" fn stand_in($($arg: $ty),*) -> $ret {
            match super::$fallback::real() {
                // SAFETY: the stand-in's own signature, with the caller's arguments.
                Some(real) => unsafe { real($($passed as _),*) },
                None => $spec.unresolved_code,
            }
        }
    };
}

/// The body behind an allocation's trampoline (other actions need none).
macro_rules! hook_body {
    // `kind`, when the line names one, is a memory-kind argument the
    // runtime's `placement` reads (as `MemoryKind` hands it over).
    (alloc; $spec:expr; $queries:expr; $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; ($out:ident, $size:ident $(, $kind:ident)?)) => {
        /// The trampoline's target: the arguments plus the caller's address.
        ///
        /// # Safety
        /// The runtime function's own contract.
        pub unsafe extern "C" fn body($($arg: $ty,)* caller: usize) -> $ret {
            $crate::preload::hooks::exports::forward_untraced!(api::$name; Real; ($($arg),*));
            // SAFETY: the same arguments and contract, passed on.
            unsafe { traced($($arg,)* caller) }
        }

        /// Everything but the untraced call: recording, a first lookup, a
        /// function the runtime lacks.
        ///
        /// # Safety
        /// The runtime function's own contract.
        #[inline(never)]
        unsafe extern "C" fn traced($($arg: $ty,)* caller: usize) -> $ret {
            // SAFETY: forwarding the caller's own arguments to the real function.
            let forward = real().map(|real| move || unsafe { real($($arg),*) });
            let size = $crate::preload::hooks::exports::bytes($size);
            let placement = $crate::preload::hooks::exports::placement_of!($spec; $name; $($kind)?);
            // SAFETY: `$out` is the out-parameter the real function fills.
            unsafe {
                $crate::preload::hooks::exports::alloc(
                    api::$name, forward, $out.cast(), size, caller, placement, &$queries, $spec.unresolved_code,
                )
            }
        }
    };
    ($action:ident; $($rest:tt)*) => {};
}

/// Where an allocation line's memory goes: its kind argument's say, or the
/// thread's device when the line names none.
macro_rules! placement_of {
    ($spec:expr; $name:ident;) => {
        common::runtime::Placement::ThreadDevice
    };
    ($spec:expr; $name:ident; $kind:ident) => {
        // SAFETY: the caller's own argument, which the real function reads too.
        ($spec.placement)(api::$name, unsafe { $crate::preload::hooks::exports::MemoryKind::kind($kind) })
    };
}

/// With tracing off and the real function found, returns what it returns:
/// a test and a jump, before anything that needs a frame (the rest of the
/// hook is a separate function, reached by a tail call).
macro_rules! forward_untraced {
    ($index:expr; $real:ty; ($($arg:ident),*)) => {
        if !$crate::preload::record::tracing()
            // SAFETY: `$real` is this hook's C signature.
            && let Some(real) = unsafe { $crate::preload::hooks::real::found::<$real>($index) }
        {
            // SAFETY: forwarding the caller's own arguments to the real function.
            return unsafe { real($($arg),*) };
        }
    };
}

/// The exported function of one hook line.
macro_rules! hook_export {
    (alloc; $spec:expr; $queries:expr; $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; ($($acted:ident),*)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        #[cfg_attr(test, allow(dead_code))]
        #[unsafe(naked)]
        /// # Safety
        /// The runtime function's own contract.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!(
                concat!("mov ", $crate::preload::hooks::exports::caller_register!(x86_64; $($arg)*), ", [rsp]"),
                "jmp {body}",
                body = sym $name::body,
            );
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!(
                concat!("mov ", $crate::preload::hooks::exports::caller_register!(aarch64; $($arg)*), ", x30"),
                "b {body}",
                body = sym $name::body,
            );
        }
    };
    (free; $spec:expr; $queries:expr; $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; ($pointer:ident)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        /// # Safety
        /// The runtime function's own contract.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            /// Everything but the untraced call (see `hook_body`).
            #[inline(never)]
            unsafe extern "C" fn traced($($arg: $ty),*) -> $ret {
                // SAFETY: forwarding the caller's own arguments to the real function.
                let forward = $name::real().map(|real| move || unsafe { real($($arg),*) });
                $crate::preload::hooks::exports::free(api::$name, forward, $pointer as usize, &$queries, $spec.unresolved_code)
            }
            $crate::preload::hooks::exports::forward_untraced!(api::$name; $name::Real; ($($arg),*));
            // SAFETY: the same arguments and contract, passed on.
            unsafe { traced($($arg),*) }
        }
    };
    (call; $spec:expr; $queries:expr; $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; ($($bytes:ident)?)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        /// # Safety
        /// The runtime function's own contract.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            /// Everything but the untraced call (see `hook_body`).
            #[inline(never)]
            unsafe extern "C" fn traced($($arg: $ty),*) -> $ret {
                // SAFETY: forwarding the caller's own arguments to the real function.
                let forward = $name::real().map(|real| move || unsafe { real($($arg),*) });
                let bytes = 0 $( + $crate::preload::hooks::exports::bytes($bytes) )?;
                $crate::preload::hooks::exports::call(api::$name, forward, bytes, &$queries, $spec.unresolved_code)
            }
            $crate::preload::hooks::exports::forward_untraced!(api::$name; $name::Real; ($($arg),*));
            // SAFETY: the same arguments and contract, passed on.
            unsafe { traced($($arg),*) }
        }
    };
    (set_device; $spec:expr; $queries:expr; $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; ($device:ident)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        /// # Safety
        /// The runtime function's own contract.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: forwarding the caller's own arguments to the real function.
            let forward = $name::real().map(|real| move || unsafe { real($($arg),*) });
            $crate::preload::hooks::exports::set_device(api::$name, forward, $device, &$queries, $spec.unresolved_code)
        }
    };
    (entry_point; $spec:expr; $queries:expr; $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; ($symbol:ident, $func:ident, $flags:ident $(, $version:ident)?)) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        /// # Safety
        /// The runtime function's own contract.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: forwarding the caller's own arguments to the real function.
            let forward = $name::real().map(|real| move || unsafe { real($($arg),*) });
            // Lookups without a version argument get the newest the runtime knows.
            let version = u64::MAX $( .min($crate::preload::hooks::exports::bytes($version)) )?;
            let asked = $crate::preload::hooks::by_name::Asked {
                symbol: $symbol, func: $func.cast(), version, flags: $crate::preload::hooks::exports::bytes($flags),
            };
            // SAFETY: the lookup's contract: `$symbol` is a C string, `$func` the
            // out-parameter the real lookup fills.
            unsafe { $crate::preload::hooks::by_name::entry_point(api::$name, forward, asked, &$queries, $spec.unresolved_code) }
        }
    };
    (query; $($rest:tt)*) => {};
    (@address query $name:ident) => { None };
    (@address $action:ident $name:ident) => { Some($name as *const () as *mut c_void) };
}

pub(crate) use {caller_register, forward_untraced, hook_body, hook_export, hook_functions, placement_of, stand_in};

/// A size argument (`size_t` or `uint64_t`) as recorded.
#[inline(always)]
pub fn bytes(size: impl TryInto<u64>) -> u64 {
    size.try_into().unwrap_or(u64::MAX)
}

/// A memory-kind argument as a runtime's `placement` reads it: a type or
/// flag word as it is; a properties struct as its runtime encodes it.
pub trait MemoryKind {
    /// # Safety
    /// A pointer argument is NULL or points to what the runtime function's
    /// contract says it does.
    unsafe fn kind(self) -> u64;
}

macro_rules! kind_words {
    ($($word:ty),*) => { $(impl MemoryKind for $word {
        #[inline(always)]
        unsafe fn kind(self) -> u64 {
            bytes(self)
        }
    })* };
}
kind_words!(u16, u32, u64, usize);

/// A call the runtime cannot answer: it has no such function.
#[cold]
fn unresolved(code: i32) -> i32 {
    record::count_unresolved();
    code
}

/// Reads an allocation's out-parameter after the call (NULL-safe).
///
/// # Safety
/// `out` is NULL or points to a readable pointer-sized value.
#[inline(always)]
unsafe fn read_out(out: *mut usize) -> usize {
    // SAFETY: checked for NULL; the caller passed it to the runtime to fill.
    if out.is_null() { 0 } else { unsafe { out.read() } }
}

/// An allocation: its result, size and caller are recorded, where its own
/// arguments placed it.
///
/// # Safety
/// `out` is NULL or the pointer-sized out-parameter `forward` fills.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one per fact of the call, all from the hook's expansion
pub unsafe fn alloc(
    index: usize,
    forward: Option<impl FnOnce() -> i32>,
    out: *mut usize,
    size: u64,
    caller: usize,
    placement: Placement,
    queries: &'static Queries,
    unresolved_code: i32,
) -> i32 {
    let Some(forward) = forward else { return unresolved(unresolved_code) };
    let scope = record::enter(queries);
    let rc = forward();
    if let Some(scope) = scope {
        // SAFETY: the runtime filled (or not) the caller's out-parameter.
        scope.alloc(index, rc, unsafe { read_out(out) }, size, caller, placement);
    }
    rc
}

/// A free of a pointer (or handle) that an allocation returned.
#[inline(always)]
pub fn free(
    index: usize,
    forward: Option<impl FnOnce() -> i32>,
    pointer: usize,
    queries: &'static Queries,
    unresolved_code: i32,
) -> i32 {
    let Some(forward) = forward else { return unresolved(unresolved_code) };
    let Some(scope) = record::enter(queries) else { return forward() };
    // Forget the pointer before freeing: once freed, another thread may get
    // the same address back and record it.
    let taken = scope.take(index, pointer);
    let rc = forward();
    scope.freed(index, rc, pointer, taken);
    rc
}

/// A call counted per API (with `bytes` when it names a size).
#[inline(always)]
pub fn call(
    index: usize,
    forward: Option<impl FnOnce() -> i32>,
    bytes: u64,
    queries: &'static Queries,
    unresolved_code: i32,
) -> i32 {
    let Some(forward) = forward else { return unresolved(unresolved_code) };
    let scope = record::enter(queries);
    let rc = forward();
    if let Some(scope) = scope {
        scope.call(index, rc, bytes);
    }
    rc
}

/// Selecting a device: the thread's device is known from then on, even
/// before tracing records anything.
#[inline(always)]
pub fn set_device(
    index: usize,
    forward: Option<impl FnOnce() -> i32>,
    device: i32,
    queries: &'static Queries,
    unresolved_code: i32,
) -> i32 {
    let Some(forward) = forward else { return unresolved(unresolved_code) };
    let rc = forward();
    if rc == 0 {
        record::set_current_device(device);
    }
    if let Some(scope) = record::enter(queries) {
        scope.call(index, rc, 0);
    }
    rc
}

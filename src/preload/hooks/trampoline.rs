//! Exported hooks that need their caller: a two-instruction trampoline puts
//! the return address in the argument register after the function's own
//! arguments and jumps to the Rust body, which therefore gets it for free and
//! exactly (no frame pointers, no unwinding).

/// `with_caller!(name(args..) -> ret => body, x86 = "reg", arm = "reg")`:
/// `body` is an `extern "C"` function taking the same arguments plus
/// `caller: usize`; the registers are the ones for argument number n+1.
macro_rules! with_caller {
    ($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty => $body:path, x86 = $x86:literal, arm = $arm:literal) => {
        #[cfg_attr(not(test), unsafe(no_mangle))]
        #[cfg_attr(test, allow(dead_code))]
        #[unsafe(naked)]
        /// # Safety
        /// Same contract as the runtime function of the same name.
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!(concat!("mov ", $x86, ", [rsp]"), "jmp {body}", body = sym $body);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!(concat!("mov ", $arm, ", x30"), "b {body}", body = sym $body);
        }
    };
}

pub(crate) use with_caller;

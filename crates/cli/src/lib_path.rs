//! `npu-alloc-shim lib`: the absolute path of the preload library, for
//! `LD_PRELOAD=$(npu-alloc-shim lib)`; found as `run` finds it (locate.rs).

/// Exit status when the library is not found (as `run` says it).
const EXIT_NOT_FOUND: i32 = 127;

#[derive(clap::Args)]
pub struct LibArgs {}

pub fn lib(_args: LibArgs) -> i32 {
    // A path LD_PRELOAD cannot hold is refused here as `run` refuses it.
    let found =
        super::locate::find_library(None).and_then(|path| super::preload_env::with_library(None, &path).map(|_| path));
    match found {
        Ok(path) => {
            println!("{}", path.display());
            0
        }
        Err(problem) => {
            eprintln!("npu-alloc-shim: {problem}");
            EXIT_NOT_FOUND
        }
    }
}

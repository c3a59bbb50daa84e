//! PyTorch-style allocator configuration: tokenizer, parser and the
//! normalization decision. Pure code shared by the preloaded library and the
//! CLI, so `npu-alloc-shim check` answers with exactly what the library does.

pub mod decide;
pub mod keys;
pub mod marker;
pub mod parse;
pub mod quote;
pub mod sleep;
pub mod switches;
pub mod tokenizer;

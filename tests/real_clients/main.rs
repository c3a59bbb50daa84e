//! Real clients: the real torch_npu wheels on the simulated Ascend runtime, with and without the library, and whatif's replays on them.
//!
//! One test binary per room; each module was a test file of its own.

mod lines;
mod torch_npu;
mod whatif;

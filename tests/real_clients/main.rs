//! Real clients: the real torch_npu wheels on the simulated Ascend runtime, with and without the library, whatif's replays on them, and the pip wheel installed by pip.
//!
//! One test binary per room; each module was a test file of its own.

mod lines;
mod torch_cuda;
mod torch_npu;
mod whatif;
mod wheel;

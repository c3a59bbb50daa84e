//! Reliability (docs/reliability.md): hostile values, load, process shapes, faults, setuid, valgrind and the sanitizers.
//!
//! One test binary per room; each module was a test file of its own.

mod faults;
mod load;
mod security;
mod shapes;
mod tools;
mod values;

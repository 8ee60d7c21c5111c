//! The instance shim on its own, for the runtime crate's tests (the `wisp` binary
//! plays this part itself when started with `__instance-shim`).

fn main() {
    wisp_runtime::process::shim::main();
}

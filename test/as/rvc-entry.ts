// Test entry: exposes the RVC expander as a standalone wasm module.
export { expandCompressed } from "../../src/cpu/rvc";

// The PLIC's sizes, in a leaf module: the device model and the machine map
// (which puts them in the device tree) both take them from here.

/** PLIC sources including the reserved source 0 (so valid sources are 1..95). */
export const PLIC_NUM_SOURCES = 96;
/** Priority bits implemented per source (priorities 0..7). */
export const PLIC_PRIORITY_BITS = 3;

//! Methods on the logits: the MSP baseline, ODIN, energy, MaxLogit, entropy, GEN and KL matching.

pub mod energy;
pub mod msp;
pub mod odin;

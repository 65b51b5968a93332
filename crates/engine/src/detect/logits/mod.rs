//! Methods on the logits: the MSP baseline, ODIN, energy, MaxLogit, entropy, GEN, KL matching,
//! temperature scaling and OpenMax.

pub mod energy;
pub mod entropy;
pub mod gen_entropy;
pub mod klm;
pub mod maxlogit;
pub mod msp;
pub mod odin;
pub mod openmax;
pub mod tempscale;

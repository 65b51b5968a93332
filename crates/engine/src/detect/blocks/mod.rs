//! Methods on inner blocks' feature maps (the card's `blocks`): multi-mahalanobis on every block's
//! spatial means, RankFeat on the last block's map without its rank-1 part, Gram on every block's
//! Gram row sums. The model reduces the maps once per pass (`model::blocks`); these read the
//! reductions.

pub mod gram;
pub mod multi_mahalanobis;
pub mod rankfeat;

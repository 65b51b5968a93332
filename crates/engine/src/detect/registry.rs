//! Every scoring method, in menu order. Adding a method is its file plus one line here.

use super::Detector;
use super::blocks::{gram::Gram, multi_mahalanobis::MultiMahalanobis, rankfeat::RankFeat};
use super::confidence::Confidence;
use super::ensemble::Ensemble;
use super::features::ash::{Ash, Variant};
use super::features::{
    dice::Dice, fdbd::Fdbd, gmm::Gmm, gradnorm::GradNorm, knn::Knn, lts::Lts, mahalanobis::Mahalanobis, nci::Nci,
    nnguide::NnGuide, pnml::Pnml, react::React, residual::Residual, rmds::RelativeMahalanobis, scale::Scale, she::She,
    vim::Vim, vra::Vra,
};
use super::logits::{
    energy::Energy, entropy::Entropy, gen_entropy::Gen, klm::KlMatching, maxlogit::MaxLogit, msp::Msp, odin::Odin,
    openmax::OpenMax, tempscale::TempScale,
};

/// The registered detectors.
pub static DETECTORS: &[&dyn Detector] = &[
    &Msp,
    &Odin,
    &Energy,
    &MaxLogit,
    &Entropy,
    &Gen,
    &KlMatching,
    &TempScale,
    &OpenMax,
    &Mahalanobis,
    &RelativeMahalanobis,
    &Gmm,
    &Knn,
    &NnGuide,
    &Vim,
    &Residual,
    &Fdbd,
    &Nci,
    &She,
    &Pnml,
    &React,
    &Vra,
    &Ash(Variant::Prune),
    &Ash(Variant::Binarize),
    &Ash(Variant::Scale),
    &Scale,
    &Lts,
    &Dice,
    &GradNorm,
    &MultiMahalanobis,
    &RankFeat,
    &Gram,
    &Confidence,
    &Ensemble,
];

//! Inner blocks (the card's `blocks`): the model's block maps are checked against the card, reduced
//! once per pass, kept for re-scoring, and RankFeat runs only where the last block is the map the
//! features are pooled from (`tests/fixtures/make_feature_refs.py` makes the models; its reference
//! scores are checked in `feature_methods`).

use crate::support;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::cache::{CachedOutputs, can_rescore, rescore};
use oodscope_engine::detect::plan::Plan;
use oodscope_engine::detect::{Missing, Params};
use oodscope_engine::model::blocks::GRAM_POLES;
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{Method, ScoreSettings, run_scoring};

fn models() -> PathBuf {
    support::fixtures().join("features/models")
}

fn id_set(model: &Model) -> ImageSet {
    let folder = support::fixtures().join("features/images/id");
    ImageSet::open(folder.to_str().unwrap(), Role::Id, &model.card.classes).unwrap()
}

fn rankfeat() -> ScoreSettings {
    let method: Method = "rankfeat".parse().unwrap();
    ScoreSettings::new(method, &Params::new(), &Default::default()).unwrap()
}

/// What a run kept, as the window caches it.
fn kept(run: &oodscope_engine::score::ScoreRun) -> CachedOutputs {
    CachedOutputs {
        logits: run.logits.clone(),
        logit_width: run.logit_width,
        features: run.features.clone(),
        feature_width: run.feature_width,
        member_widths: Vec::new(),
        blocks: run.blocks.clone(),
        rows: run.images.len(),
    }
}

#[test]
fn the_probe_finds_the_blocks_and_whether_the_last_is_pooled() {
    let model = Model::load(&models().join("feat_blocks.toml"), DeviceChoice::Cpu).unwrap();
    assert_eq!(model.block_widths, [8, 16]);
    let caps = model.capabilities();
    assert!(caps.blocks == 2 && caps.pooled_block);
    assert_eq!(rankfeat().method.missing(&caps, false), None);

    let unpooled = Model::load(&models().join("feat_blocks_unpooled.toml"), DeviceChoice::Cpu).unwrap();
    assert_eq!(unpooled.block_widths, [16, 8]);
    let caps = unpooled.capabilities();
    assert!(caps.blocks == 2 && !caps.pooled_block);
    assert_eq!(rankfeat().method.missing(&caps, false), Some(Missing::PooledBlock));
    let message = match Plan::single(&unpooled, &rankfeat(), None) {
        Ok(_) => panic!("rankfeat was accepted on a block that is not pooled into the features"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("pooled") && message.contains("layer4") && !message.contains('\n'),
        "{message}"
    );

    // A model without blocks lists rankfeat as unavailable, saying how to export them.
    let plain = Model::load(&models().join("feat.toml"), DeviceChoice::Cpu).unwrap();
    let missing = rankfeat().method.missing(&plain.capabilities(), false).unwrap();
    assert_eq!(missing, Missing::Blocks);
    assert!(missing.message("rankfeat", "feat").contains("--blocks"));
}

#[test]
fn a_card_whose_blocks_the_model_does_not_return_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(models().join("feat.pt"), dir.path().join("m.pt")).unwrap();
    let card = std::fs::read_to_string(models().join("feat.toml")).unwrap();
    std::fs::write(dir.path().join("m.toml"), format!("{card}blocks = [\"layer4\"]\n")).unwrap();
    let err = Model::load(&dir.path().join("m.pt"), DeviceChoice::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("returns a tuple of 2 items") && err.contains("1 block maps (layer4)") && !err.contains('\n'),
        "{err}"
    );
    // `blocks` without features is a card error.
    let logits_only = card.replace("outputs = \"logits+features\"", "outputs = \"logits\"");
    std::fs::write(
        dir.path().join("m.toml"),
        format!("{}blocks = [\"layer4\"]\n", logits_only.replace("head = \"fc\"\n", "")),
    )
    .unwrap();
    let err = Model::load(&dir.path().join("m.pt"), DeviceChoice::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`blocks` is set but outputs = \"logits\" has no features"),
        "{err}"
    );
}

#[test]
fn rankfeat_rescored_from_kept_reductions_equals_the_pass() {
    let model = Model::load(&models().join("feat_blocks.toml"), DeviceChoice::Cpu).unwrap();
    let plan = Plan::single(&model, &rankfeat(), None).unwrap().keeping_features(true);
    let run = run_scoring(&plan, &[id_set(&model)], 16, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(run.blocks.widths, [8, 16]);
    assert_eq!(run.blocks.values.len(), run.images.len() * (8 + 16 + 16));
    assert!(!run.blocks.gram, "no method of the run reads the Gram rows");
    let cache = kept(&run);
    assert!(can_rescore(&rankfeat(), &cache));
    let again = rescore(&plan.context(), &cache, &rankfeat()).unwrap();
    assert_eq!(again, run.scores());
    // Without the reductions the window would run the model again.
    let without = CachedOutputs {
        blocks: Default::default(),
        ..cache
    };
    assert!(!can_rescore(&rankfeat(), &without));
}

#[test]
fn multi_mahalanobis_and_gram_rescored_from_kept_reductions_equal_the_pass() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&models().join("feat_blocks.toml"), DeviceChoice::Cpu).unwrap();
    let train = support::fixtures().join("features/fit");
    let set = ImageSet::open(train.to_str().unwrap(), Role::Id, &model.card.classes).unwrap();
    let path = dir.path().join("fit.safetensors");
    let options = oodscope_engine::fit::FitOptions {
        batch_size: 32,
        max_images: None,
        class_covariances: false,
    };
    oodscope_engine::fit::fit_model(&model, &set, &options, &path, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let fit = oodscope_engine::stats::Fit::load(&path, &model, usize::MAX).unwrap();
    assert_eq!(fit.info.block_widths, [8, 16]);
    assert_eq!(fit.blocks.as_ref().map(Vec::len), Some(2));
    assert!(fit.gram.is_some());
    let method: Method = "multi-mahalanobis".parse().unwrap();
    let settings = ScoreSettings::new(method, &Params::new(), &Default::default()).unwrap();
    let plan = Plan::single(&model, &settings, Some(&fit))
        .unwrap()
        .keeping_features(true);
    let run = run_scoring(&plan, &[id_set(&model)], 16, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let cache = kept(&run);
    assert!(can_rescore(&settings, &cache));
    assert_eq!(rescore(&plan.context(), &cache, &settings).unwrap(), run.scores());
    // That run kept no Gram rows (ten times the rest): gram needs the model again.
    let gram_at = |poles: f64| {
        let params: Params = [("poles".to_string(), poles)].into_iter().collect();
        ScoreSettings::new("gram".parse().unwrap(), &params, &Default::default()).unwrap()
    };
    assert!(!can_rescore(&gram_at(10.0), &cache));
    // A run of gram keeps them, and re-scores at every number of poles as its own pass does.
    let gram_plan = Plan::single(&model, &gram_at(10.0), Some(&fit))
        .unwrap()
        .keeping_features(true);
    let gram_run = run_scoring(&gram_plan, &[id_set(&model)], 16, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(
        gram_run.blocks.values.len(),
        gram_run.images.len() * (8 + 16 + 16 + GRAM_POLES * (8 + 16))
    );
    let gram_cache = kept(&gram_run);
    for poles in [10.0, 2.0] {
        let gram = gram_at(poles);
        let pass = run_scoring(
            &Plan::single(&model, &gram, Some(&fit)).unwrap(),
            &[id_set(&model)],
            16,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert!(can_rescore(&gram, &gram_cache));
        assert_eq!(
            rescore(&plan.context(), &gram_cache, &gram).unwrap(),
            pass.scores(),
            "P = {poles}"
        );
    }
    // A fit of the model without blocks has no per-block statistics: one line says so.
    let plain = Model::load(&models().join("feat.toml"), DeviceChoice::Cpu).unwrap();
    let plain_path = dir.path().join("plain.safetensors");
    oodscope_engine::fit::fit_model(
        &plain,
        &set,
        &options,
        &plain_path,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let plain_fit = oodscope_engine::stats::Fit::load(&plain_path, &plain, usize::MAX).unwrap();
    assert!(plain_fit.blocks.is_none() && plain_fit.info.block_widths.is_empty());
    assert!(settings.method.missing(&plain.capabilities(), true) == Some(Missing::Blocks));
}

//! What the engine's tests share: the test kit (fixtures, references, Python) and ODIN-style
//! settings by name.

pub use oodscope_testkit::*;

/// `method`'s settings for `model` with T and ε where the method has them (the rest at defaults).
pub fn t_eps(
    model: &oodscope_engine::model::Model,
    method: &str,
    t: f64,
    eps: f64,
) -> oodscope_engine::score::ScoreSettings {
    let dims = oodscope_engine::detect::plan::dims_of(model);
    let m = oodscope_engine::score::Method::find(method).unwrap();
    let names: Vec<&str> = m.params(&dims).iter().map(|s| s.name).collect();
    let given: Vec<(&str, f64)> = [("temperature", t), ("epsilon", eps)]
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        .collect();
    oodscope_engine::score::ScoreSettings::named(method, &given, &dims).unwrap()
}

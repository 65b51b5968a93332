//! The small persisted settings: last model, sets, method, sliders and view options (not results).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use oodscope_data::Role;
use oodscope_engine::detect::Params;
use oodscope_engine::score::Method;

/// One image set as remembered between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSet {
    pub spec: String,
    pub ood: bool,
    pub enabled: bool,
}

impl SavedSet {
    pub fn role(&self) -> Role {
        if self.ood { Role::Ood } else { Role::Id }
    }
}

/// Which view fills the central area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tab {
    #[default]
    Histogram,
    Curves,
    Gallery,
    Dropped,
    Tuning,
    Compare,
    /// The open detector file: its manifest and calibration histogram with δ.
    Detector,
    /// A running `oodscope serve` watched live.
    Watch,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub model: Option<String>,
    pub sets: Vec<SavedSet>,
    /// The ID training folder that methods with a fit use (none: those methods are disabled).
    pub train: Option<String>,
    pub method: Method,
    /// Each method's parameter values as last set, by method name (switching back keeps them;
    /// a method not here starts at its defaults).
    pub params: BTreeMap<String, Params>,
    pub bins: usize,
    pub log_y: bool,
    pub density: bool,
    pub tab: Tab,
    pub batch_size: usize,
    pub export_dir: String,
    /// The threshold δ last set (score ≥ δ → ID), restored at start when it falls in the scores'
    /// range.
    pub threshold: Option<f32>,
    /// A results file to open at start (`oodscope --results FILE`; not kept between sessions).
    #[serde(skip)]
    pub results: Option<String>,
    /// A server to watch at start (`oodscope --watch http://HOST:PORT`; not kept between sessions).
    #[serde(skip)]
    pub watch: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            sets: Vec::new(),
            train: None,
            method: Method::named("odin"),
            params: BTreeMap::new(),
            bins: 60,
            log_y: false,
            density: true,
            tab: Tab::Histogram,
            batch_size: 64,
            export_dir: "oodscope-export".into(),
            threshold: None,
            results: None,
            watch: None,
        }
    }
}

impl Settings {
    /// The parameters given for the current method (not yet checked; missing ones take defaults).
    pub fn current_params(&self) -> Params {
        self.params.get(self.method.name()).cloned().unwrap_or_default()
    }

    /// Sets one parameter of the current method.
    pub fn set_param(&mut self, name: &str, value: f64) {
        self.params
            .entry(self.method.name().to_string())
            .or_default()
            .set(name, value);
    }

    /// The bundled demo: the Fashion-MNIST ResNet on the demo sets (paths relative to `root`).
    pub fn demo(root: &std::path::Path) -> Settings {
        let path = |p: &str| root.join(p).display().to_string();
        let set = |spec: String, ood: bool| SavedSet {
            spec,
            ood,
            enabled: true,
        };
        Settings {
            model: Some(path("models/fmnist-resnet.pt")),
            train: Some(path("assets/demo/fmnist-train")),
            sets: vec![
                set(path("assets/demo/fmnist-test"), false),
                set(path("assets/demo/mnist"), true),
                set(path("assets/demo/photo-crops"), true),
                set("uniform:1000".into(), true),
                set("gaussian:1000".into(), true),
            ],
            ..Settings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_old_files_fill_in_defaults() {
        let mut s = Settings::demo(std::path::Path::new("/repo"));
        s.set_param("temperature", 10.0);
        s.method = Method::named("knn");
        s.set_param("k", 20.0);
        s.tab = Tab::Gallery;
        s.threshold = Some(0.25);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), s);
        assert_eq!(s.current_params().get("k"), Ok(20.0));
        assert_eq!(s.params["odin"].get("temperature"), Ok(10.0));
        // A settings file from an older version, with fields missing or gone, still loads.
        let old: Settings = serde_json::from_str(r#"{"temperature": 20.0, "epsilon": 0.001, "bins": 30}"#).unwrap();
        assert_eq!(
            (old.bins, old.method, old.current_params()),
            (30, Method::named("odin"), Params::new())
        );
        assert_eq!(old.threshold, None);
        assert_eq!(s.sets[0].role(), Role::Id);
        assert_eq!(s.sets[1].role(), Role::Ood);
    }
}

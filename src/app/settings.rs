//! The small persisted settings: last model, sets, method, sliders and view options (not results).

use serde::{Deserialize, Serialize};

use crate::data::Role;
use crate::score::Method;

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub model: Option<String>,
    pub sets: Vec<SavedSet>,
    pub method: Method,
    pub temperature: f64,
    pub epsilon: f64,
    pub bins: usize,
    pub log_y: bool,
    pub density: bool,
    pub tab: Tab,
    pub batch_size: usize,
    pub export_dir: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            sets: Vec::new(),
            method: Method::Odin,
            temperature: 1000.0,
            epsilon: 0.0014,
            bins: 60,
            log_y: false,
            density: true,
            tab: Tab::Histogram,
            batch_size: 64,
            export_dir: "oodscope-export".into(),
        }
    }
}

impl Settings {
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
        s.temperature = 10.0;
        s.tab = Tab::Gallery;
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&text).unwrap(), s);
        // A settings file from an older version, with fields missing, still loads.
        let old: Settings = serde_json::from_str(r#"{"temperature": 20.0, "epsilon": 0.001}"#).unwrap();
        assert_eq!(
            (old.temperature, old.epsilon, old.bins, old.method),
            (20.0, 0.001, 60, Method::Odin)
        );
        assert_eq!(s.sets[0].role(), Role::Id);
        assert_eq!(s.sets[1].role(), Role::Ood);
    }
}

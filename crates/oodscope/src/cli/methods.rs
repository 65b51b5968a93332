//! `oodscope methods`: every registered method, grouped by what it needs, with its parameters;
//! with `--model`, whether that model supports each one and its model-specific defaults.

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use oodscope_engine::detect::params::fmt_value;
use oodscope_engine::detect::plan::dims_of;
use oodscope_engine::detect::{Dims, Group};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::Method;

#[derive(Debug, Args)]
pub struct MethodsArgs {
    /// Say which methods this model supports, with its defaults (a model's D sets some of them).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// Runs `oodscope methods`.
pub fn methods_command(args: &MethodsArgs) -> Result<()> {
    let model = match &args.model {
        Some(path) => Some(Model::load(path, DeviceChoice::Cpu)?),
        None => None,
    };
    print!("{}", methods_text(model.as_ref()));
    Ok(())
}

/// The listing.
pub fn methods_text(model: Option<&Model>) -> String {
    let dims = model.map_or(Dims::default(), dims_of);
    let mut out = String::new();
    for group in Group::ALL {
        let methods: Vec<Method> = Method::all().filter(|m| m.detector().group() == group).collect();
        if methods.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}:", group.title());
        for method in methods {
            let support = model
                .and_then(|m| method.missing(&m.capabilities(), true))
                .map_or_else(String::new, |missing| {
                    format!("   [not for this model: {}]", missing.short())
                });
            let _ = writeln!(out, "  {:<12} {}{support}", method.name(), method.title());
            for spec in method.params(&dims) {
                let range = if spec.max.is_finite() {
                    format!("{}–{}", fmt_value(spec.min), fmt_value(spec.max))
                } else if spec.exclusive_min {
                    "> 0".to_string()
                } else {
                    format!("≥ {}", fmt_value(spec.min))
                };
                let grid: Vec<String> = spec.grid.iter().map(|&v| fmt_value(v)).collect();
                let _ = writeln!(
                    out,
                    "      --param {}=…  default {}, range {range}; tune grid {}{}",
                    spec.name,
                    fmt_value(spec.default),
                    grid.join(","),
                    if spec.help.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", spec.help)
                    }
                );
            }
        }
    }
    out
}

//! Export of trained networks: TorchScript by tracing (Python's `torch.jit.load` opens the files)
//! and the model card beside each.

use std::path::Path;

use anyhow::{Context, Result};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// Freezes `vs` and traces `net` in eval mode on a CPU example batch; saves `path`.
pub fn export_traced(vs: &mut VarStore, net: &dyn ModuleT, path: &Path) -> Result<()> {
    vs.set_device(Device::Cpu);
    vs.freeze();
    let example = Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let module = tch::CModule::create_by_tracing("OodscopeNet", "forward", &[example], &mut |inputs| {
        vec![net.forward_t(&inputs[0], false)]
    })
    .with_context(|| format!("tracing {}", path.display()))?;
    module
        .save(path)
        .with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

/// Writes a card (TOML) for a 28×28 greyscale Fashion-MNIST model.
pub fn write_card(
    path: &Path,
    name: &str,
    outputs_or_members: &str,
    classes: &[String],
    accuracy: f64,
    notes: &str,
) -> Result<()> {
    let quoted: Vec<String> = classes.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        "name = {name:?}\ninput = [1, 28, 28]\nmean = [{mean}]\nstd = [{std}]\nclasses = [{classes}]\nresize = \"resize\"\n{outputs_or_members}\naccuracy = {accuracy:.4}\nnotes = {notes:?}\n",
        mean = super::FMNIST_MEAN,
        std = super::FMNIST_STD,
        classes = quoted.join(", "),
    );
    crate::report::write_atomically(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

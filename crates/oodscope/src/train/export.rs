//! Export of trained networks: TorchScript by tracing (Python's `torch.jit.load` opens the files)
//! and the model card beside each; single models also return their penultimate features, with the
//! head written beside them as safetensors (a traced module keeps no named parameters).

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

/// Freezes `vs` and traces the ResNet in eval mode to return one `[N, outputs + D]` tensor: the
/// head's outputs (logits, and the confidence logit where the head has one more row than
/// `classes`), then the features. Writes the head's first `classes` rows to `head_path` as
/// safetensors (`weight` [C, D], `bias` [C]). Returns D.
pub fn export_with_features(
    vs: &mut VarStore,
    net: &super::resnet::ResNet,
    classes: usize,
    path: &Path,
    head_path: &Path,
) -> Result<i64> {
    vs.set_device(Device::Cpu);
    vs.freeze();
    let example = Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let module = tch::CModule::create_by_tracing("OodscopeNet", "forward", &[example], &mut |inputs| {
        let z = net.features_t(&inputs[0], false);
        vec![Tensor::cat(&[z.apply(net.head()), z], 1)]
    })
    .with_context(|| format!("tracing {}", path.display()))?;
    module
        .save(path)
        .with_context(|| format!("saving {}", path.display()))?;
    let c = classes as i64;
    let weight = net.head().ws.narrow(0, 0, c).contiguous();
    let bias = net
        .head()
        .bs
        .as_ref()
        .map(|b| b.narrow(0, 0, c).contiguous())
        .unwrap_or_else(|| Tensor::zeros([c], (Kind::Float, Device::Cpu)));
    Tensor::write_safetensors(&[("weight", &weight), ("bias", &bias)], head_path)
        .with_context(|| format!("writing {}", head_path.display()))?;
    Ok(weight.size()[1])
}

/// The card lines of a model exported by [`export_with_features`].
pub fn features_card_lines(outputs: &str, width: i64, head_file: &str) -> String {
    format!("outputs = \"{outputs}\"\nfeatures = {width}\nhead = \"{head_file}\"")
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
    oodscope_engine::output::write_atomically(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

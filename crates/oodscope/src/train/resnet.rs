//! A small ResNet for 28×28 greyscale images: a stem and three stages of one basic block each
//! (widths w, 2w, 4w), global average pooling, and a linear head with any number of outputs.

use tch::Tensor;
use tch::nn::{self, ModuleT};

fn conv3x3(vs: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    nn::conv2d(
        vs,
        c_in,
        c_out,
        3,
        nn::ConvConfig {
            stride,
            padding: 1,
            bias: false,
            ..Default::default()
        },
    )
}

/// Two 3×3 convolutions with batch norm and a shortcut (1×1 convolution when the shape changes).
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    shortcut: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let shortcut = (stride != 1 || c_in != c_out).then(|| {
            let conv = nn::conv2d(
                vs / "shortcut_conv",
                c_in,
                c_out,
                1,
                nn::ConvConfig {
                    stride,
                    bias: false,
                    ..Default::default()
                },
            );
            (conv, nn::batch_norm2d(vs / "shortcut_bn", c_out, Default::default()))
        });
        BasicBlock {
            conv1: conv3x3(vs / "conv1", c_in, c_out, stride),
            bn1: nn::batch_norm2d(vs / "bn1", c_out, Default::default()),
            conv2: conv3x3(vs / "conv2", c_out, c_out, 1),
            bn2: nn::batch_norm2d(vs / "bn2", c_out, Default::default()),
            shortcut,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train);
        let skip = match &self.shortcut {
            Some((conv, bn)) => x.apply(conv).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (y + skip).relu()
    }
}

/// The classifier; `outputs` is the width of the head (classes, or classes + 1 for a confidence logit).
#[derive(Debug)]
pub struct ResNet {
    stem: nn::Conv2D,
    stem_bn: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    head: nn::Linear,
}

impl ResNet {
    pub fn new(vs: &nn::Path, in_channels: i64, width: i64, outputs: i64) -> Self {
        let blocks = vec![
            BasicBlock::new(&(vs / "stage1"), width, width, 1),
            BasicBlock::new(&(vs / "stage2"), width, 2 * width, 2),
            BasicBlock::new(&(vs / "stage3"), 2 * width, 4 * width, 2),
        ];
        ResNet {
            stem: conv3x3(vs / "stem", in_channels, width, 1),
            stem_bn: nn::batch_norm2d(vs / "stem_bn", width, Default::default()),
            blocks,
            head: nn::linear(vs / "head", 4 * width, outputs, Default::default()),
        }
    }
}

impl ResNet {
    /// The penultimate features `[N, 4w]`: the pooled output of the last stage.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.apply(&self.stem).apply_t(&self.stem_bn, train).relu();
        for block in &self.blocks {
            h = block.forward_t(&h, train);
        }
        h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    /// The final linear layer (`ℓ = W·z + b`).
    pub fn head(&self) -> &nn::Linear {
        &self.head
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.features_t(x, train).apply(&self.head)
    }
}

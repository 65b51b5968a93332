//! The training loops: SGD with Nesterov momentum, one warm-up epoch then a cosine decay, random
//! crops and flips; one loop per model kind, each ending in an export with a card.

use std::time::Instant;

use anyhow::Result;
use tch::nn::{self, ModuleT, OptimizerConfig, VarStore};
use tch::{Kind, Tensor};

use super::dataset::{Dataset, augment};
use super::export::{export_traced, export_with_features, features_card_lines, write_card};
use super::resnet::ResNet;
use super::{
    CONFIDENCE_BUDGET, FMNIST_MEAN, FMNIST_STD, LEAVE_OUT_BETA, LEAVE_OUT_MARGIN, LEFT_OUT_PAIRS, Rng, TrainOptions,
};

const PEAK_LR: f64 = 0.1;
const WEIGHT_DECAY: f64 = 5e-4;

fn normalize(x: &Tensor) -> Tensor {
    (x - FMNIST_MEAN as f64) / FMNIST_STD as f64
}

/// What one `fit` call trains: how many epochs over how many examples, and its name in the log.
struct Plan<'a> {
    epochs: usize,
    examples: i64,
    label: &'a str,
}

/// Runs the plan's epochs; `step` gets the shuffled batch indices and returns the loss;
/// `after_epoch` adds to the epoch's log line.
fn fit(
    vs: &VarStore,
    options: &TrainOptions,
    plan: Plan,
    rng: &mut Rng,
    step: &mut dyn FnMut(&Tensor, &mut Rng) -> Tensor,
    mut after_epoch: impl FnMut(usize) -> String,
) -> Result<()> {
    let Plan {
        epochs,
        examples: n,
        label,
    } = plan;
    let mut opt = nn::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        wd: WEIGHT_DECAY,
        nesterov: true,
    }
    .build(vs, PEAK_LR)?;
    let batches_per_epoch = (n + options.batch_size - 1) / options.batch_size;
    let total_steps = (epochs as i64 * batches_per_epoch).max(1);
    let mut global = 0i64;
    for epoch in 0..epochs {
        let started = Instant::now();
        let order = Tensor::from_slice(&rng.permutation(n as usize)).to_device(options.device);
        let (mut loss_sum, mut count) = (0.0, 0);
        for b in 0..batches_per_epoch {
            opt.set_lr(learning_rate(global, batches_per_epoch, total_steps));
            let idx = order.narrow(
                0,
                b * options.batch_size,
                options.batch_size.min(n - b * options.batch_size),
            );
            let loss = step(&idx, rng);
            opt.backward_step(&loss);
            loss_sum += loss.double_value(&[]);
            count += 1;
            global += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{label} epoch {}/{epochs}: loss {:.4}, {:.0} s ({:.0} images/s){}",
            epoch + 1,
            loss_sum / count as f64,
            seconds,
            n as f64 / seconds,
            after_epoch(epoch)
        );
    }
    Ok(())
}

/// Linear warm-up over the first epoch, then cosine decay to zero.
fn learning_rate(step: i64, warmup: i64, total: i64) -> f64 {
    if step < warmup {
        PEAK_LR * (step + 1) as f64 / warmup as f64
    } else {
        let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
        0.5 * PEAK_LR * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Evaluates `logits_of` on a dataset in batches; returns accuracy.
fn accuracy(data: &Dataset, logits_of: &dyn Fn(&Tensor) -> Tensor) -> f64 {
    tch::no_grad(|| {
        let n = data.len();
        let mut correct = 0i64;
        for start in (0..n).step_by(1000) {
            let len = 1000.min(n - start);
            let x = normalize(&data.images.narrow(0, start, len));
            let pred = logits_of(&x).argmax(1, false);
            correct += pred
                .eq_tensor(&data.labels.narrow(0, start, len))
                .sum(Kind::Int64)
                .int64_value(&[]);
        }
        correct as f64 / n as f64
    })
}

fn batch(data: &Dataset, idx: &Tensor, rng: &mut Rng) -> (Tensor, Tensor) {
    (
        normalize(&augment(&data.images.index_select(0, idx), rng)),
        data.labels.index_select(0, idx),
    )
}

pub fn train_plain(o: &TrainOptions, train: &Dataset, test: &Dataset, classes: &[String], rng: &mut Rng) -> Result<()> {
    let mut vs = VarStore::new(o.device);
    let net = ResNet::new(&vs.root(), 1, o.width, classes.len() as i64);
    let mut step = |idx: &Tensor, rng: &mut Rng| {
        let (x, y) = batch(train, idx, rng);
        net.forward_t(&x, true).cross_entropy_for_logits(&y)
    };
    let eval = |_| {
        format!(
            ", test accuracy {:.2}%",
            100.0 * accuracy(test, &|x| net.forward_t(x, false))
        )
    };
    fit(
        &vs,
        o,
        Plan {
            epochs: o.epochs,
            examples: train.len(),
            label: "plain",
        },
        rng,
        &mut step,
        eval,
    )?;
    let acc = accuracy(test, &|x| net.forward_t(x, false));
    let d = export_with_features(
        &mut vs,
        &net,
        classes.len(),
        &o.out.join("fmnist-resnet.pt"),
        &o.out.join("fmnist-resnet.head.safetensors"),
    )?;
    let notes = format!(
        "ResNet (widths {}, {}, {}), {} epochs, seed {}; output [N, {} + {d}]: logits, then features",
        o.width,
        2 * o.width,
        4 * o.width,
        o.epochs,
        o.seed,
        classes.len()
    );
    write_card(
        &o.out.join("fmnist-resnet.toml"),
        "fmnist-resnet",
        &features_card_lines("logits+features", d, "fmnist-resnet.head.safetensors"),
        classes,
        acc,
        &notes,
    )?;
    eprintln!("plain: Fashion-MNIST test accuracy {:.2}%", 100.0 * acc);
    Ok(())
}

pub fn train_confidence(
    o: &TrainOptions,
    train: &Dataset,
    test: &Dataset,
    classes: &[String],
    rng: &mut Rng,
) -> Result<()> {
    let c = classes.len() as i64;
    let mut vs = VarStore::new(o.device);
    let net = ResNet::new(&vs.root(), 1, o.width, c + 1);
    let mut lambda = 0.1f64;
    let mut step = |idx: &Tensor, rng: &mut Rng| {
        let (x, y) = batch(train, idx, rng);
        let out = net.forward_t(&x, true);
        let probs = out.narrow(1, 0, c).softmax(1, Kind::Float);
        let confidence = out.narrow(1, c, 1).sigmoid().clamp(1e-12, 1.0 - 1e-12);
        // Hints on half of the batch: p' = c·p + (1 − c)·onehot(y); the other half keeps c = 1.
        let hinted = Tensor::from_slice(&(0..idx.size()[0]).map(|_| rng.below(2) as f32).collect::<Vec<_>>())
            .to_device(o.device)
            .view([-1, 1]);
        let c_used: Tensor = &confidence * &hinted + (-&hinted + 1.0);
        let onehot = y.one_hot(c).to_kind(Kind::Float);
        let adjusted: Tensor = &c_used * probs + (-&c_used + 1.0) * onehot;
        let nll = adjusted
            .clamp(1e-12, 1.0)
            .log()
            .gather(1, &y.view([-1, 1]), false)
            .mean(Kind::Float)
            .neg();
        let confidence_loss = confidence.log().mean(Kind::Float).neg();
        let loss = nll + &confidence_loss * lambda;
        // Adapt λ so that −log c stays near the budget.
        lambda = if confidence_loss.double_value(&[]) > CONFIDENCE_BUDGET {
            lambda / 0.99
        } else {
            lambda / 1.01
        };
        loss
    };
    let logits = |x: &Tensor| net.forward_t(x, false).narrow(1, 0, c);
    fit(
        &vs,
        o,
        Plan {
            epochs: o.epochs,
            examples: train.len(),
            label: "confidence",
        },
        rng,
        &mut step,
        |_| format!(", test accuracy {:.2}%", 100.0 * accuracy(test, &logits)),
    )?;
    let acc = accuracy(test, &logits);
    let d = export_with_features(
        &mut vs,
        &net,
        classes.len(),
        &o.out.join("fmnist-resnet-confidence.pt"),
        &o.out.join("fmnist-resnet-confidence.head.safetensors"),
    )?;
    let notes = format!(
        "ResNet (widths {w}, {}, {}) with a confidence branch (DeVries & Taylor: hints p = 0.5, budget {CONFIDENCE_BUDGET}); output [N, {} + 1 + {d}]: logits, the confidence logit, then features; {} epochs, seed {}",
        2 * o.width,
        4 * o.width,
        classes.len(),
        o.epochs,
        o.seed,
        w = o.width
    );
    write_card(
        &o.out.join("fmnist-resnet-confidence.toml"),
        "fmnist-resnet-confidence",
        &features_card_lines(
            "logits+confidence+features",
            d,
            "fmnist-resnet-confidence.head.safetensors",
        ),
        classes,
        acc,
        &notes,
    )?;
    eprintln!("confidence: Fashion-MNIST test accuracy {:.2}%", 100.0 * acc);
    Ok(())
}

/// Mean entropy of the softmax of `logits` over the batch.
fn mean_entropy(logits: &Tensor) -> Tensor {
    let log_p = logits.log_softmax(1, Kind::Float);
    (log_p.exp() * &log_p)
        .sum_dim_intlist(&[1i64][..], false, Kind::Float)
        .mean(Kind::Float)
        .neg()
}

pub fn train_ensemble(
    o: &TrainOptions,
    train: &Dataset,
    test: &Dataset,
    classes: &[String],
    rng: &mut Rng,
) -> Result<()> {
    let dir = o.out.join("fmnist-leaveout");
    std::fs::create_dir_all(&dir)?;
    let mut members = Vec::new();
    let averaged = Tensor::zeros([test.len(), classes.len() as i64], (Kind::Float, o.device));
    for (k, pair) in LEFT_OUT_PAIRS.iter().enumerate() {
        let kept: Vec<usize> = (0..classes.len()).filter(|c| !pair.contains(c)).collect();
        let id_data = train.select_classes(&kept);
        let ood_data = train.select_classes(pair);
        let mut vs = VarStore::new(o.device);
        let net = ResNet::new(&vs.root(), 1, o.width, kept.len() as i64);
        let ood_batch = o.batch_size / 2;
        let mut step = |idx: &Tensor, rng: &mut Rng| {
            let (x_id, y) = batch(&id_data, idx, rng);
            let ood_idx: Vec<i64> = (0..ood_batch)
                .map(|_| rng.below(ood_data.len() as u64) as i64)
                .collect();
            let ood_idx = Tensor::from_slice(&ood_idx).to_device(o.device);
            let (x_ood, _) = batch(&ood_data, &ood_idx, rng);
            let out = net.forward_t(&Tensor::cat(&[&x_id, &x_ood], 0), true);
            let n_id = x_id.size()[0];
            let (logits_id, logits_ood) = (out.narrow(0, 0, n_id), out.narrow(0, n_id, ood_batch));
            let margin = (mean_entropy(&logits_id) - mean_entropy(&logits_ood) + LEAVE_OUT_MARGIN).relu();
            logits_id.cross_entropy_for_logits(&y) + margin * LEAVE_OUT_BETA
        };
        let label = format!("leave-out member {k} (without {:?})", pair.map(|c| classes[c].as_str()));
        let test_kept = test.select_classes(&kept);
        fit(
            &vs,
            o,
            Plan {
                epochs: o.ensemble_epochs,
                examples: id_data.len(),
                label: &label,
            },
            rng,
            &mut step,
            |_| {
                format!(
                    ", accuracy on its 8 classes {:.2}%",
                    100.0 * accuracy(&test_kept, &|x| net.forward_t(x, false))
                )
            },
        )?;
        // Scatter this member's probabilities into the 10 classes for the ensemble's accuracy.
        tch::no_grad(|| {
            let index = Tensor::from_slice(&kept.iter().map(|&c| c as i64).collect::<Vec<_>>()).to_device(o.device);
            for start in (0..test.len()).step_by(1000) {
                let len = 1000.min(test.len() - start);
                let p = net
                    .forward_t(&normalize(&test.images.narrow(0, start, len)), false)
                    .softmax(1, Kind::Float);
                let mut rows = averaged.narrow(0, start, len);
                let _ = rows.index_add_(1, &index, &p);
            }
        });
        let file = format!("m{k}.pt");
        export_traced(&mut vs, &net, &dir.join(&file))?;
        members.push(format!("  {{ model = \"{file}\", classes = {kept:?} }},"));
    }
    let acc = averaged
        .argmax(1, false)
        .eq_tensor(&test.labels)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    let notes = format!(
        "leave-out ensemble (Vyas et al.): 5 ResNets of width {}, member k trained on 8 classes with CE + {LEAVE_OUT_BETA}·max(0, {LEAVE_OUT_MARGIN} + H_id − H_ood), its left-out pair as OOD; {} epochs each, seed {}",
        o.width, o.ensemble_epochs, o.seed
    );
    write_card(
        &dir.join("fmnist-leaveout.toml"),
        "fmnist-leaveout",
        &format!("members = [\n{}\n]", members.join("\n")),
        classes,
        acc,
        &notes,
    )?;
    eprintln!("ensemble: Fashion-MNIST test accuracy {:.2}%", 100.0 * acc);
    Ok(())
}

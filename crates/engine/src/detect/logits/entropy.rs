//! Negative entropy of the softmax: `Σ_k p_k log p_k` (= −H(p)); confident predictions score high.

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;

pub struct Entropy;

impl Detector for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }
    fn title(&self) -> &'static str {
        "Entropy"
    }
    fn group(&self) -> Group {
        Group::Logits
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let logits = outputs.logits.f_to_kind(Kind::Double)?;
        let log_p = logits.f_log_softmax(1, Kind::Double)?;
        Ok(log_p
            .f_exp()?
            .f_mul(&log_p)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?)
    }
}

//! Tensors to plain values: what leaves the device for the rest of the program (the worker sends
//! plain vectors, never tensors).

use tch::{Device, Kind, TchError, Tensor};

/// The tensor detached, on the CPU, as `kind`, contiguous and flat.
fn flat_on_cpu(t: &Tensor, kind: Kind) -> Result<Tensor, TchError> {
    t.f_detach()?
        .f_to_device(Device::Cpu)?
        .f_to_kind(kind)?
        .f_contiguous()?
        .f_view([-1])
}

/// A tensor's values on the CPU as `f32`.
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>, TchError> {
    Vec::<f32>::try_from(flat_on_cpu(t, Kind::Float)?)
}

/// A tensor's values on the CPU as `i64`.
pub fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>, TchError> {
    Vec::<i64>::try_from(flat_on_cpu(t, Kind::Int64)?)
}

/// A tensor's values on the CPU as `f64`.
pub fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>, TchError> {
    Vec::<f64>::try_from(flat_on_cpu(t, Kind::Double)?)
}

//! wgrad at a sparse weight's non-zeros: `dW[k, n] = Σ_t X[t, k] · dY[t, n]` only where the
//! mask keeps (k, n).

use super::gemm::{GemmConfig, GemmRun};
use crate::error::{Error, Result};
use crate::spec::FabricSpec;

pub fn run_wgrad(_fabric: &FabricSpec, _cfg: &GemmConfig) -> Result<GemmRun> {
    Err(Error::Input(
        "--form wgrad is not implemented yet; use forward or dgrad".into(),
    ))
}

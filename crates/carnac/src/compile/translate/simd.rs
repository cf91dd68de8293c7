//! The fixed-width SIMD operators (to come).

use wasmparser::Operator;

use super::Translator;

impl Translator<'_, '_> {
    /// Operators of this part; false if `op` belongs to another part.
    pub(super) fn simd_operator(&mut self, _op: &Operator<'_>) -> Result<bool, String> {
        Ok(false)
    }
}

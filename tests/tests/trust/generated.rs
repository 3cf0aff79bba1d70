//! Review findings: generated.

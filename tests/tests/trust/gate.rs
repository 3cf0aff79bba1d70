//! Review findings: gate.

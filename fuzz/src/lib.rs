//! Shared by the fuzz targets: the checks every input must pass (the same
//! file is compiled into the normal test suite for the corpus regressions).

pub mod checks;
